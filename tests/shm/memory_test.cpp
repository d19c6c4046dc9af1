// Memory goes back to the system when files go, and a store survives its process: a new
// Store attached to the same memfds finds every file again, while memfds that hold
// anything else are refused with EPROTO.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <random>

#include "sys/memfd.hpp"
#include "tests/shm/store_fixture.hpp"

namespace hostchanfs::shm::testing {
namespace {

constexpr std::uint64_t kMiB = 1ull << 20;

std::uint64_t rss_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

// Memory a memfd really holds (its allocated blocks), whether or not anything maps it.
std::uint64_t allocated_bytes(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

// TSan makes 256 MiB of writes slow, and its shadow memory makes RSS say nothing.
#if defined(__SANITIZE_THREAD__)
constexpr bool kRssMeaningful = false;
constexpr std::uint64_t kFileBytes = 8 * kMiB;
#else
constexpr bool kRssMeaningful = true;
constexpr std::uint64_t kFileBytes = 64 * kMiB;
#endif

// The data memfd holds the files' pages while they exist and none once they are gone; the
// process itself never maps file data (pread/pwrite), so its RSS does not grow with it.
TEST(StoreMemory, DeletingFilesGivesTheMemoryBack) {
  auto store = must(Store::create(StoreOptions{.size_bytes = 300 * kMiB}));
  const std::string chunk(kMiB, 'm');
  auto fill = [&](const std::string& name, std::uint64_t total) {
    Attr a = must(store->mknod(kRootIno, name, S_IFREG | 0644, 0, root_caller()));
    store->forget(a.ino, 1);
    for (std::uint64_t off = 0; off < total; off += chunk.size())
      ASSERT_EQ(must(store->write(a.ino, off, bytes(chunk), root_caller())), chunk.size());
  };
  // Warm up once, so what the store keeps for itself is in place before the baseline.
  fill("warm", 4 * kMiB);
  ASSERT_TRUE(Ok(store->unlink(kRootIno, "warm")));

  const std::uint64_t start = rss_bytes();
  for (int i = 0; i < 4; ++i) fill("big" + std::to_string(i), kFileBytes);
  EXPECT_EQ(store->pages_used(), 4 * kFileBytes / kPageSize);
  const std::uint64_t held = allocated_bytes(store->data_fd());
  EXPECT_GE(held, 4 * kFileBytes);
  EXPECT_LE(held, 4 * kFileBytes + kMiB);
  const std::uint64_t full = rss_bytes();

  for (int i = 0; i < 4; ++i) ASSERT_TRUE(Ok(store->unlink(kRootIno, "big" + std::to_string(i))));
  const std::uint64_t after = rss_bytes();
  std::printf("data memfd: %llu KiB with the files, %llu KiB after deleting; RSS: start %llu KiB, "
              "with the files %llu KiB, after deleting %llu KiB\n",
              static_cast<unsigned long long>(held >> 10),
              static_cast<unsigned long long>(allocated_bytes(store->data_fd()) >> 10),
              static_cast<unsigned long long>(start >> 10), static_cast<unsigned long long>(full >> 10),
              static_cast<unsigned long long>(after >> 10));
  EXPECT_EQ(store->pages_used(), 0u);
  EXPECT_EQ(allocated_bytes(store->data_fd()), 0u);
  if (kRssMeaningful) {
    EXPECT_LE(full, start + 16 * kMiB) << "file data showed up in the process: something maps it";
    EXPECT_LE(after, start + 4 * kMiB);
  }
}

TEST(StoreMemory, TruncateAndPunchGiveMemoryBack) {
  auto store = must(Store::create(StoreOptions{.size_bytes = 64 * kMiB}));
  Attr a = must(store->mknod(kRootIno, "f", S_IFREG | 0644, 0, root_caller()));
  const std::string chunk(kMiB, 't');
  for (std::uint64_t off = 0; off < 32 * kMiB; off += kMiB)
    ASSERT_TRUE(Ok(store->write(a.ino, off, bytes(chunk), root_caller())));
  EXPECT_GE(allocated_bytes(store->data_fd()), 32 * kMiB);
  ASSERT_TRUE(Ok(store->fallocate(a.ino, 3 /* PUNCH_HOLE|KEEP_SIZE */, 0, 16 * kMiB)));
  EXPECT_LE(allocated_bytes(store->data_fd()), 16 * kMiB);
  AttrChange c;
  c.size = 0;
  ASSERT_TRUE(Ok(store->setattr(a.ino, c, root_caller())));
  EXPECT_EQ(allocated_bytes(store->data_fd()), 0u);
}

// Issue 15's bound: whatever a client does, a channel's metadata takes at most 20% of its
// quota + 16 MiB (the meta memfd's size, fixed at creation), and what it frees is given
// back. The workload that grew the old segment to 79 MiB on a 32M channel: long names,
// 64 KiB xattrs, long symlinks, holes punched between pages, many empty files.
TEST(StoreMemory, MetadataStaysWithinItsBoundAndFallsWhenFilesGo) {
  const std::uint64_t quota = 32 * kMiB;
  auto store = must(Store::create(StoreOptions{.size_bytes = quota}));
  const std::uint64_t quota_pages = quota / kPageSize, inodes = Store::default_max_inodes(quota);
  const std::uint64_t bound = quota / 5 + 16 * kMiB;
  const std::uint64_t region = Store::meta_region_size(quota_pages, inodes);
  EXPECT_LE(region, bound);
  const std::uint64_t empty = allocated_bytes(store->meta_fd());
  Caller who = root_caller();
  auto long_name = [](std::uint64_t i) {
    std::string n = std::to_string(i);
    return n + std::string(kNameMax - n.size(), 'n');
  };
  std::vector<std::string> names;
  // Files with holes punched between their pages, and 64 KiB xattrs on them.
  const std::string chunk(64 * kPageSize, 'h');
  for (std::uint64_t i = 0; i < 24; ++i) {
    names.push_back(long_name(i));
    Attr a = must(store->mknod(kRootIno, names.back(), S_IFREG | 0644, 0, who));
    store->forget(a.ino, 1);
    ASSERT_TRUE(Ok(store->write(a.ino, 0, bytes(chunk), who)));
    for (std::uint64_t p = 1; p < 64; p += 2)
      ASSERT_TRUE(Ok(store->fallocate(a.ino, 3 /* PUNCH_HOLE|KEEP_SIZE */, p * kPageSize, kPageSize)));
    for (int x = 0; x < 3; ++x)
      ASSERT_TRUE(Ok(store->setxattr(a.ino, "user.big" + std::to_string(x), bytes(std::string(kXattrValueMax, 'x')), 0)));
  }
  // Long symlinks, then empty files with long names up to the inode limit.
  for (std::uint64_t i = 24; i < 1024; ++i) {
    names.push_back(long_name(i));
    store->forget(must(store->symlink(kRootIno, names.back(), std::string(kSymlinkMax, 'L'), who)).ino, 1);
  }
  for (std::uint64_t i = 1024; store->inodes_used() < inodes; ++i) {
    names.push_back(long_name(i));
    store->forget(must(store->mknod(kRootIno, names.back(), S_IFREG | 0644, 0, who)).ino, 1);
  }
  const std::uint64_t full = allocated_bytes(store->meta_fd());
  std::printf("meta memfd: %.2f MiB allocated with %zu files (empty store %.2f MiB; region %.2f MiB; bound %.2f MiB)\n",
              static_cast<double>(full) / kMiB, names.size(), static_cast<double>(empty) / kMiB,
              static_cast<double>(region) / kMiB, static_cast<double>(bound) / kMiB);
  EXPECT_LE(full, bound);
  EXPECT_LE(full, region);
  for (const std::string& n : names) ASSERT_TRUE(Ok(store->unlink(kRootIno, n)));
  const std::uint64_t after = allocated_bytes(store->meta_fd());
  std::printf("meta memfd: %.2f MiB allocated after deleting them\n", static_cast<double>(after) / kMiB);
  EXPECT_EQ(store->pages_used(), 0u);
  EXPECT_EQ(allocated_bytes(store->data_fd()), 0u);
  EXPECT_LT(after, empty + (full - empty) / 4) << "the freed metadata was not given back";
  EXPECT_FALSE(store->verify());
}

// --- re-attach ----------------------------------------------------------------------------

UniqueFd dup_fd(int fd) {
  UniqueFd d(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  EXPECT_TRUE(d);
  return d;
}

TEST(StoreReattach, AttachFindsEverythingAgain) {
  UniqueFd meta = must(make_memfd("test-meta", 0)), data = must(make_memfd("test-data", 0));
  UniqueFd meta_copy = dup_fd(meta.get()), data_copy = dup_fd(data.get());
  const StoreOptions opts{.size_bytes = 2 * kMiB, .max_inodes = 50};
  auto store = must(Store::create_in(opts, std::move(meta), std::move(data)));
  EXPECT_EQ(must(fd_size(meta_copy.get())), Store::meta_region_size(512, 50));
  EXPECT_EQ(must(fd_size(data_copy.get())), 2 * kMiB);

  Caller who = root_caller();
  Attr d = must(store->mkdir(kRootIno, "d", 0750, who));
  Attr f = must(store->mknod(d.ino, "f", S_IFREG | 0640, 0, who));
  std::string content(10000, 'c');
  content += "end";
  ASSERT_EQ(must(store->write(f.ino, 5 * kPageSize, bytes(content), who)), content.size());
  Attr h = must(store->link(f.ino, kRootIno, "hard"));
  Attr l = must(store->symlink(kRootIno, "long", std::string(300, 'L'), who));
  ASSERT_TRUE(Ok(store->setxattr(f.ino, "user.k", bytes(std::string("v1")), 0)));
  Attr p = must(store->mknod(kRootIno, "fifo", S_IFIFO | 0600, 0, who));
  for (Ino i : {d.ino, f.ino, h.ino, l.ino, p.ino}) store->forget(i, 1);
  // A listing paused before the daemon goes resumes after it comes back.
  for (int i = 0; i < 10; ++i)
    store->forget(must(store->mknod(d.ino, "e" + std::to_string(i), S_IFREG | 0644, 0, who)).ino, 1);
  std::vector<std::string> first_half;
  std::uint64_t paused_at = 0;
  ASSERT_TRUE(Ok(store->readdir(d.ino, 0, false, [&](const DirEntry& e, const Attr*) {
    if (first_half.size() == 6) return false;
    first_half.emplace_back(e.name);
    paused_at = e.next_offset;
    return true;
  })));
  f = must(store->getattr(f.ino));
  const std::uint64_t pages = store->pages_used(), inodes = store->inodes_used();
  store.reset();

  auto again = must(Store::attach(std::move(meta_copy), std::move(data_copy)));
  EXPECT_EQ(again->pages_used(), pages);
  EXPECT_EQ(again->inodes_used(), inodes);
  EXPECT_EQ(again->quota_pages(), 512u);
  EXPECT_EQ(again->max_inodes(), 50u);
  Attr d2 = must(again->lookup(kRootIno, "d"));
  Attr f2 = must(again->lookup(d2.ino, "f"));
  EXPECT_EQ(d2.ino, d.ino);
  EXPECT_EQ(f2.ino, f.ino);
  EXPECT_EQ(f2.generation, f.generation);
  EXPECT_EQ(f2.size, f.size);
  EXPECT_EQ(f2.nlink, 2u);
  EXPECT_EQ(f2.mode, S_IFREG | 0640u);
  std::string back(content.size() + 10, '\0');
  back.resize(must(again->read(f2.ino, 5 * kPageSize,
                               {reinterpret_cast<std::byte*>(back.data()), back.size()})));
  EXPECT_EQ(back, content);
  EXPECT_EQ(must(again->readlink(must(again->lookup(kRootIno, "long")).ino)), std::string(300, 'L'));
  char val[8];
  EXPECT_EQ(must(again->getxattr(f2.ino, "user.k", std::as_writable_bytes(std::span(val)))), 2u);
  EXPECT_EQ(std::string(val, 2), "v1");
  EXPECT_EQ(must(again->lookup(kRootIno, "fifo")).mode, S_IFIFO | 0600u);
  EXPECT_EQ(must(again->lookup(kRootIno, "hard")).ino, f.ino);
  std::vector<std::string> listed = first_half;
  ASSERT_TRUE(Ok(again->readdir(d2.ino, paused_at, false, [&](const DirEntry& e, const Attr*) {
    listed.emplace_back(e.name);
    return true;
  })));
  std::sort(listed.begin(), listed.end());
  std::vector<std::string> expected{".", ".."};
  for (int i = 0; i < 10; ++i) expected.push_back("e" + std::to_string(i));
  expected.push_back("f");
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(listed, expected);

  // It keeps working: new files, and freeing old ones gives their pages back.
  Attr n = must(again->mknod(kRootIno, "new", S_IFREG | 0644, 0, root_caller()));
  ASSERT_TRUE(Ok(again->write(n.ino, 0, bytes(std::string("x")), root_caller())));
  EXPECT_NE(n.ino, f.ino);
  ASSERT_TRUE(Ok(again->unlink(d2.ino, "f")));
  ASSERT_TRUE(Ok(again->unlink(kRootIno, "hard")));
  again->forget(f2.ino, 2);
  EXPECT_EQ(again->pages_used(), pages - 4 + 1);  // 3 data pages + the xattr page go
}

TEST(StoreReattach, GarbageIsRefusedWithEproto) {
  auto attach = [](std::uint64_t meta_size, std::uint64_t data_size, bool random) {
    UniqueFd meta = must(make_memfd("garbage-meta", meta_size));
    UniqueFd data = must(make_memfd("garbage-data", data_size));
    if (random) {
      std::mt19937 rng(42);
      std::string junk(static_cast<std::size_t>(std::min<std::uint64_t>(meta_size, 1 << 20)), '\0');
      for (char& ch : junk) ch = static_cast<char>(rng());
      EXPECT_EQ(::pwrite(meta.get(), junk.data(), junk.size(), 0),
                static_cast<ssize_t>(junk.size()));
    }
    return Store::attach(std::move(meta), std::move(data));
  };
  const std::uint64_t meta_size = Store::meta_region_size(256, 1024);
  EXPECT_TRUE(Fails(attach(meta_size, kMiB, true), EPROTO));
  EXPECT_TRUE(Fails(attach(meta_size, kMiB, false), EPROTO));  // all zeros
  EXPECT_TRUE(Fails(attach(0, 0, false), EPROTO));
  EXPECT_TRUE(Fails(attach(16, kMiB, true), EPROTO));

  // A real store's meta region with a data region of the wrong size.
  UniqueFd meta = must(make_memfd("real-meta", 0)), data = must(make_memfd("real-data", 0));
  UniqueFd meta_copy = dup_fd(meta.get());
  auto store = must(Store::create_in(StoreOptions{.size_bytes = kMiB}, std::move(meta), std::move(data)));
  store.reset();
  UniqueFd small = must(make_memfd("small-data", kPageSize));
  EXPECT_TRUE(Fails(Store::attach(std::move(meta_copy), std::move(small)), EPROTO));
}

}  // namespace
}  // namespace hostchanfs::shm::testing
