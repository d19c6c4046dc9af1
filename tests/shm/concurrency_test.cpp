// Several threads create, write, read, rename, link and unlink in the same directories at
// once, the way a multi-threaded FUSE loop drives the store; afterwards the namespace and
// the accounting must agree (pages_used is the sum of the pages held, inodes_used the
// number of names plus the root, link counts and directory sizes match their entries).
// Run under TSan (-DHOSTCHANFS_SANITIZER=thread) this is the data-race check.
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/xattr.h>

#include <map>
#include <random>
#include <thread>

#include "tests/shm/store_fixture.hpp"

namespace hostchanfs::shm::testing {
namespace {

constexpr int kThreads = 4;
constexpr int kDirs = 4;
constexpr int kNames = 12;
#if defined(__SANITIZE_THREAD__)
constexpr int kOpsPerThread = 1500;
#else
constexpr int kOpsPerThread = 6000;
#endif

class ConcurrencyTest : public StoreTest {
 protected:
  void SetUp() override {
    reset_store(StoreOptions{.size_bytes = 4 * kMiB});
    for (int i = 0; i < kDirs; ++i) dirs_.push_back(make_dir(kRootIno, "d" + std::to_string(i)).ino);
  }

  // One worker: a random mix of operations; errors that concurrency makes legitimate
  // (ENOENT, EEXIST, ENOSPC, ...) are fine, but a private file must always read back
  // exactly what this thread wrote.
  void worker(int id) {
    std::mt19937_64 rng(static_cast<std::uint64_t>(id) * 7919 + 1);
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<std::uint64_t>(n)); };
    auto dir = [&] { return dirs_[static_cast<std::size_t>(pick(kDirs))]; };
    auto name = [&] { return std::string(1, "fghs"[pick(4)]) + std::to_string(pick(kNames)); };
    Caller who = id % 2 ? root_caller() : user_caller(1000 + id, 1000);

    Attr mine = must(s().mknod(kRootIno, "priv" + std::to_string(id), S_IFREG | 0600, 0, who));
    std::string shadow;
    std::string buf;

    for (int op = 0; op < kOpsPerThread; ++op) {
      switch (pick(12)) {
        case 0: {  // create (or find) a shared file and use it
          Ino d = dir();
          std::string n = name();
          auto a = s().mknod(d, n, S_IFREG | 0644, 0, who);
          if (!a) a = s().lookup(d, n);
          if (!a) break;
          Ino ino = a.value().ino;
          if (S_ISREG(a.value().mode)) {
            buf.assign(1 + pick(20000), static_cast<char>('a' + id));
            std::uint64_t off = static_cast<std::uint64_t>(pick(64 * 1024));
            auto w = write(ino, off, buf, who);
            if (w) {
              EXPECT_LE(w.value(), buf.size());
            }
            auto v = read_result(ino, off, buf.size());
            EXPECT_TRUE(Ok(v));
            EXPECT_TRUE(Ok(s().accessed(ino)));
          }
          s().forget(ino, 1);
          break;
        }
        case 1:
          (void)s().unlink(dir(), name());
          break;
        case 2: {
          static constexpr unsigned kFlags[] = {0, 0, RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT};
          (void)s().rename(dir(), name(), dir(), name(), kFlags[pick(5)], {}, who);
          break;
        }
        case 3: {  // directories come and go ('s' names)
          Ino d = dir();
          std::string n = "s" + std::to_string(pick(kNames));
          if (pick(2)) {
            auto a = s().mkdir(d, n, 0755, who);
            if (a) s().forget(a.value().ino, 1);
          } else {
            (void)s().rmdir(d, n);
          }
          break;
        }
        case 4: {
          auto a = s().lookup(dir(), name());
          if (!a) break;
          auto l = s().link(a.value().ino, dir(), name());
          if (l) s().forget(l.value().ino, 1);
          s().forget(a.value().ino, 1);
          break;
        }
        case 5: {  // attributes and truncation
          auto a = s().lookup(dir(), name());
          if (!a) break;
          AttrChange c;
          c.mode = static_cast<mode_t>(pick(2) ? 0644 : 06755);
          if (S_ISREG(a.value().mode) && pick(2)) c.size = static_cast<std::uint64_t>(pick(80000));
          (void)s().setattr(a.value().ino, c, who);
          (void)s().getattr(a.value().ino);
          s().forget(a.value().ino, 1);
          break;
        }
        case 6: {  // readdirplus: every counted entry is forgotten again, as the kernel would
          std::vector<Ino> counted;
          (void)s().readdir(dir(), 0, true, [&](const DirEntry& e, const Attr* at) {
            EXPECT_NE(at, nullptr);
            if (e.name != "." && e.name != "..") counted.push_back(e.ino);
            return true;
          });
          for (Ino i : counted) s().forget(i, 1);
          break;
        }
        case 7: {
          auto a = s().lookup(dir(), name());
          if (!a) break;
          if (S_ISREG(a.value().mode)) {
            std::uint64_t off = static_cast<std::uint64_t>(pick(64 * 1024));
            std::uint64_t len = 1 + static_cast<std::uint64_t>(pick(32 * 1024));
            static constexpr int kModes[] = {0, FALLOC_FL_KEEP_SIZE,
                                             FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE};
            (void)s().fallocate(a.value().ino, kModes[pick(3)], off, len);
            (void)s().seek(a.value().ino, off, pick(2) ? SEEK_DATA : SEEK_HOLE);
          }
          s().forget(a.value().ino, 1);
          break;
        }
        case 8: {
          auto a = s().lookup(dir(), name());
          if (!a) break;
          std::string xn = "trusted.x" + std::to_string(pick(3));
          if (pick(3)) {
            (void)s().setxattr(a.value().ino, xn, bytes(std::string(pick(3000), 'v')), 0);
          } else {
            (void)s().removexattr(a.value().ino, xn);
          }
          std::byte out[4096];
          (void)s().getxattr(a.value().ino, xn, out);
          char list_buf[256];
          (void)s().listxattr(a.value().ino, list_buf);
          s().forget(a.value().ino, 1);
          break;
        }
        case 9: {  // symlinks, short and long
          auto a = s().symlink(dir(), name(), std::string(pick(2) ? 10 : 200, 't'), who);
          if (a) s().forget(a.value().ino, 1);
          break;
        }
        case 10: {  // the private file: its contents are known exactly
          std::uint64_t off = static_cast<std::uint64_t>(pick(48 * 1024));
          if (pick(5) == 0) {
            std::uint64_t size = std::min<std::uint64_t>(shadow.size(), off);
            EXPECT_TRUE(Ok(truncate(mine.ino, size)));
            shadow.resize(size);
            break;
          }
          buf.assign(1 + pick(9000), static_cast<char>('A' + pick(26)));
          auto w = write(mine.ino, off, buf, who);
          if (!w) {
            EXPECT_EQ(w.error(), std::errc::no_space_on_device);
            break;
          }
          if (shadow.size() < off + w.value()) shadow.resize(off + w.value(), '\0');
          shadow.replace(off, w.value(), buf, 0, w.value());
          EXPECT_EQ(read(mine.ino, 0, shadow.size() + 10), shadow) << "thread " << id;
          break;
        }
        case 11: {  // open, unlink, use, release; or an O_TMPFILE one, sometimes linked
          if (pick(2)) {
            auto t = s().create_unnamed(dir(), 0600, who);
            if (!t) break;
            (void)write(t.value().ino, 0, "unnamed", who);
            if (pick(2)) {
              auto l = s().link(t.value().ino, dir(), name());
              if (l) s().forget(l.value().ino, 1);
            }
            s().release(t.value().ino);
            s().forget(t.value().ino, 1);
            break;
          }
          std::string n = "tmp" + std::to_string(id);
          auto a = s().mknod(kRootIno, n, S_IFREG | 0600, 0, who);
          if (!a) break;
          Ino ino = a.value().ino;
          EXPECT_TRUE(Ok(s().open(ino)));
          s().forget(ino, 1);
          EXPECT_TRUE(Ok(s().unlink(kRootIno, n)));
          auto w = write(ino, 0, "gone soon", who);
          if (w) {
            EXPECT_EQ(read(ino, 0, w.value()), std::string("gone soon").substr(0, w.value()));
          }
          s().release(ino);
          break;
        }
      }
    }
    EXPECT_EQ(read(mine.ino, 0, shadow.size() + 10), shadow) << "thread " << id;
    s().forget(mine.ino, 1);
  }

  struct Census {
    std::map<Ino, Attr> inodes;
    std::map<Ino, std::uint64_t> names;    // per inode
    std::map<Ino, std::uint64_t> subdirs;  // per directory
    std::map<Ino, std::uint64_t> entries;  // per directory
    std::uint64_t total_names = 0;
  };
  void walk(Ino d, Census& c) {
    c.inodes.emplace(d, attr(d));
    for (const Listed& e : list(d)) {
      if (e.name == "." || e.name == "..") continue;
      ++c.total_names;
      ++c.names[e.ino];
      ++c.entries[d];
      Attr a = attr(e.ino);
      EXPECT_EQ(a.mode & S_IFMT, e.mode & S_IFMT) << e.name;
      if (S_ISDIR(a.mode)) {
        ++c.subdirs[d];
        walk(e.ino, c);
      } else {
        c.inodes.emplace(e.ino, a);
      }
    }
  }
  void remove_all_xattrs(const Census& c) {
    for (auto& [ino, a] : c.inodes) {
      std::size_t size = must(s().listxattr(ino, {}));
      std::string buf(size, '\0');
      must(s().listxattr(ino, {buf.data(), buf.size()}));
      for (std::size_t pos = 0; pos < buf.size();) {
        std::size_t end = buf.find('\0', pos);
        EXPECT_TRUE(Ok(s().removexattr(ino, buf.substr(pos, end - pos))));
        pos = end + 1;
      }
    }
  }
  void remove_tree(Ino d) {
    for (const Listed& e : list(d)) {
      if (e.name == "." || e.name == "..") continue;
      if (S_ISDIR(e.mode)) {
        remove_tree(e.ino);
        EXPECT_TRUE(Ok(s().rmdir(d, e.name)));
      } else {
        EXPECT_TRUE(Ok(s().unlink(d, e.name)));
      }
    }
  }

  std::vector<Ino> dirs_;
};

TEST_F(ConcurrencyTest, ParallelMixThenTheAccountingAgrees) {
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back([this, i] { worker(i); });
  for (auto& t : threads) t.join();

  Census c;
  walk(kRootIno, c);
  remove_all_xattrs(c);
  std::uint64_t pages = 0;
  for (auto& [ino, a] : c.inodes) {
    pages += a.blocks / 8;
    if (S_ISDIR(a.mode)) {
      EXPECT_EQ(a.nlink, 2 + c.subdirs[ino]) << "dir " << ino;
      EXPECT_EQ(a.size, 40 + 20 * c.entries[ino]) << "dir " << ino;
    } else {
      EXPECT_EQ(a.nlink, c.names[ino]) << "ino " << ino;
    }
  }
  EXPECT_EQ(s().pages_used(), pages);
  EXPECT_EQ(s().inodes_used(), c.total_names + 1);
  StatFs f = s().statfs();
  EXPECT_EQ(f.blocks_free, f.blocks - pages);
  EXPECT_EQ(f.files_free, f.files - c.total_names - 1);

  remove_tree(kRootIno);
  EXPECT_EQ(s().pages_used(), 0u);
  EXPECT_EQ(s().inodes_used(), 1u);
  EXPECT_EQ(attr(kRootIno).nlink, 2u);
}

// Readers hold views while writers change other files, and one file is read while it is
// written: no torn bookkeeping, and every read returns whole bytes of some write.
TEST_F(ConcurrencyTest, ReadersAndWritersOnOneFile) {
  Attr f = create(kRootIno, "shared");
  constexpr std::size_t kLen = 3 * kPageSize;
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; i < 2000; ++i) {
      std::string buf(kLen, static_cast<char>('a' + i % 26));
      EXPECT_TRUE(Ok(write(f.ino, 0, buf)));
      if (i % 100 == 0) {
        EXPECT_TRUE(Ok(truncate(f.ino, kLen)));
      }
    }
    stop = true;
  });
  std::thread reader([&] {
    while (!stop) {
      std::string got = read(f.ino, 0, kLen);
      EXPECT_LE(got.size(), kLen);
      for (char ch : got) {
        if (ch != '\0' && (ch < 'a' || ch > 'z')) {
          ADD_FAILURE() << "foreign byte " << int(ch);
          return;
        }
      }
    }
  });
  writer.join();
  reader.join();
  EXPECT_EQ(s().pages_used(), 3u);
}

// Attribute changes on one inode race with every call that resolves it (getattr, lookup,
// read, write, xattrs, readdir): the inode's mode must be read under its lock.
TEST_F(ConcurrencyTest, AttributeChangesRaceWithResolvers) {
  Attr f = create(dirs_[0], "f", S_IFREG | 06755);
  Caller user = user_caller(1000, 1000);
  std::atomic<bool> stop{false};
  std::thread changer([&] {
    for (int i = 0; i < 3000; ++i) {
      AttrChange c;
      c.mode = static_cast<mode_t>(i % 2 ? 06755 : 0644);
      if (i % 7 == 0) c.uid = static_cast<uid_t>(i % 3);
      EXPECT_TRUE(Ok(set(f.ino, c)));
      EXPECT_TRUE(Ok(write(f.ino, static_cast<std::uint64_t>(i % 5), "w", user)));
    }
    stop = true;
  });
  std::thread resolver([&] {
    while (!stop) {
      EXPECT_TRUE(Ok(s().getattr(f.ino)));
      EXPECT_TRUE(Ok(peek(dirs_[0], "f")));
      EXPECT_TRUE(Ok(read_result(f.ino, 0, 8)));
      EXPECT_TRUE(Ok(s().setxattr(f.ino, "trusted.r", bytes("v"), 0)));
      (void)s().seek(f.ino, 0, SEEK_HOLE);  // ENXIO until the first write
      list(dirs_[0]);
    }
  });
  changer.join();
  resolver.join();
  EXPECT_EQ(read(f.ino, 0, 10), "wwwww");
}

}  // namespace
}  // namespace hostchanfs::shm::testing
