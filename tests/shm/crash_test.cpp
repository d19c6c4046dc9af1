// Deterministic crash points, for every mutating operation of the store and every step k
// of it: a child process attaches to the store's memfds, arms the crash switch
// (persist::crash_point: SIGKILL just before, or just after, the k-th change to the
// region) and runs the operation; it dies there. The parent then attaches as a restarted
// daemon would (recovery, the invariant check, the work a dead process left), and checks
// that
//   - the store passes every invariant, free pages being holes (Store::verify);
//   - the operation is wholly there or wholly absent (the snapshot equals the one taken
//     before it or the one taken after it in a process that did not die), usage and
//     quota included;
//   - the same request resent (its unique with the resend bit) gets the reply the
//     operation gives, and leaves the store exactly as one application of it does.
// The sweep ends at the first k the child survives. Big operations run with a chunk of 2
// page-map entries per tx, so that their work spans several txs.
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/xattr.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "shm/acl.hpp"
#include "shm/persist/crash_point.hpp"
#include "tests/shm/crash_fixture.hpp"
#include "tests/support/child_process.hpp"

namespace hostchanfs::shm::testing {
namespace {

using hostchanfs::testing::ChildProcess;
namespace crash_point = persist::crash_point;

// Sanitized builds run every step slower: they take every third one.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr std::uint64_t kStride = 3;
#else
constexpr std::uint64_t kStride = 1;
#endif

template <class T>
std::string reply_of(const Result<T>& r) {
  if (!r) return "errno " + std::to_string(static_cast<int>(r.error()));
  if constexpr (std::is_same_v<T, Attr>) {
    const Attr& a = r.value();
    return "entry mode " + std::to_string(a.mode) + " nlink " + std::to_string(a.nlink) + " size " +
           std::to_string(a.size) + " blocks " + std::to_string(a.blocks) + " opens " + std::to_string(a.opens);
  } else if constexpr (std::is_void_v<T>) {
    return "ok";
  } else {
    return "value " + std::to_string(r.value());
  }
}

std::string text(std::size_t n, char seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i % 23);
  return s;
}

// The names the setups make, looked up without keeping the lookup.
Ino ino_of(Store& s, Ino dir, std::string_view name) {
  Attr a = must(s.lookup(dir, name), "lookup");
  s.forget(a.ino, 1);
  return a.ino;
}
Ino made(Result<Attr> r, Store& s) {
  Attr a = must(std::move(r), "setup");
  s.forget(a.ino, 1);
  return a.ino;
}

const Caller kRoot{0, 0, true};

// u::rw-,u:65534:r--,g::r--,m::r--,o::--- in the kernel's wire form.
std::span<const std::byte> acl_bytes() {
  static const acl::Entry e[] = {{acl::kUserObj, 6}, {acl::kUser, 4, 65534}, {acl::kGroupObj, 4}, {acl::kMask, 4}, {acl::kOther, 0}};
  static const std::vector<std::byte> a = acl::encoded(e);
  return a;
}

// /d (a directory) with /d/f (5 pages of text, two xattrs), /g (empty), /empty (an empty
// directory), /l (a short symlink), /two and /d/two (one file, two links).
void base_setup(Store& s) {
  Ino d = made(s.mkdir(kRootIno, "d", 0755, kRoot), s);
  Ino f = made(s.mknod(d, "f", S_IFREG | 0644, 0, kRoot), s);
  must(s.write(f, 0, bytes(text(5 * kPageSize - 100, 'a')), kRoot));
  must(s.setxattr(f, "user.a", bytes("first value"), 0));
  must(s.setxattr(f, "user.z", bytes(text(300, 'z')), 0));
  made(s.mknod(kRootIno, "g", S_IFREG | 0600, 0, kRoot), s);
  made(s.mkdir(kRootIno, "empty", 0700, kRoot), s);
  made(s.symlink(kRootIno, "l", "d/f", kRoot), s);
  Ino two = made(s.mknod(kRootIno, "two", S_IFREG | 0644, 0, kRoot), s);
  must(s.write(two, 0, bytes("two links"), kRoot));
  made(s.link(two, d, "two"), s);
}

struct Case {
  std::string name;
  std::function<std::string(Store&, const Request&)> op;
  std::function<void(Store&)> setup = base_setup;
  std::vector<Ino> unnamed = {};  // inodes without a name to describe
  std::uint64_t size = 1 << 20;
  // A write over bytes a file holds: they are copied in place, outside any tx (data is
  // not journaled, as on most filesystems), so a death in flight may leave some of them
  // new while the rest of the state (sizes, allocation, every other byte) is as before;
  // the resend rewrites them. Every other operation is wholly there or wholly absent.
  bool overwrites = false;
};

// A state that a death in the middle of an in-place overwrite may leave: `before`, except
// that bytes of contents may already be those of `after`.
bool torn_write(const Snapshot& got, const Snapshot& before, const Snapshot& after) {
  if (got.pages_used != before.pages_used || got.inodes_used != before.inodes_used ||
      got.nodes.size() != before.nodes.size() || after.nodes.size() != before.nodes.size())
    return false;
  for (std::size_t i = 0; i < got.nodes.size(); ++i) {
    Node g = got.nodes[i], b = before.nodes[i];
    const std::string& a = after.nodes[i].content;
    if (g.content.size() != b.content.size()) return false;
    for (std::size_t k = 0; k < g.content.size(); ++k)
      if (g.content[k] != b.content[k] && (k >= a.size() || g.content[k] != a[k])) return false;
    g.content = b.content;
    if (!(g == b)) return false;
  }
  return true;
}

std::vector<Case> cases() {
  std::vector<Case> c;
  c.push_back({"mknod", [](Store& s, const Request& r) { return reply_of(s.mknod(kRootIno, "new", S_IFREG | 0640, 0, kRoot, r)); }});
  c.push_back({"mknod-fifo", [](Store& s, const Request& r) { return reply_of(s.mknod(kRootIno, "p", S_IFIFO | 0600, 0, kRoot, r)); }});
  c.push_back({"create-and-open", [](Store& s, const Request& r) { return reply_of(s.create_and_open(kRootIno, "new", 0600, kRoot, r)); }});
  c.push_back({"mkdir", [](Store& s, const Request& r) { return reply_of(s.mkdir(ino_of(s, kRootIno, "d"), "sub", 0755, kRoot, r)); }});
  c.push_back({"symlink-short", [](Store& s, const Request& r) { return reply_of(s.symlink(kRootIno, "sl", "target", kRoot, r)); }});
  c.push_back({"symlink-long", [](Store& s, const Request& r) { return reply_of(s.symlink(kRootIno, "ll", text(300, 'L'), kRoot, r)); }});
  c.push_back({"link", [](Store& s, const Request& r) {
                 return reply_of(s.link(ino_of(s, ino_of(s, kRootIno, "d"), "f"), kRootIno, "hard", r));
               }});
  c.push_back({"unlink-big", [](Store& s, const Request& r) { return reply_of(s.unlink(ino_of(s, kRootIno, "d"), "f", r)); }});
  c.push_back({"unlink-one-of-two", [](Store& s, const Request& r) { return reply_of(s.unlink(kRootIno, "two", r)); }});
  c.push_back({"rmdir", [](Store& s, const Request& r) { return reply_of(s.rmdir(kRootIno, "empty", r)); }});
  c.push_back({"rename-move", [](Store& s, const Request& r) {
                 return reply_of(s.rename(ino_of(s, kRootIno, "d"), "f", kRootIno, "moved", 0, r));
               }});
  c.push_back({"rename-replace", [](Store& s, const Request& r) {
                 return reply_of(s.rename(kRootIno, "g", ino_of(s, kRootIno, "d"), "f", 0, r));
               }});
  c.push_back({"rename-exchange", [](Store& s, const Request& r) {
                 return reply_of(s.rename(kRootIno, "g", kRootIno, "d", RENAME_EXCHANGE, r));
               }});
  c.push_back({"rename-directory", [](Store& s, const Request& r) {
                 return reply_of(s.rename(kRootIno, "d", ino_of(s, kRootIno, "empty"), "d2", 0, r));
               }});
  c.push_back({"open", [](Store& s, const Request& r) { return reply_of(s.open(ino_of(s, kRootIno, "g"), r)); }});
  c.push_back({"accessed", [](Store& s, const Request& r) { return reply_of(s.accessed(ino_of(s, kRootIno, "g"), r)); }});
  c.push_back({"rename-whiteout", [](Store& s, const Request& r) {
                 return reply_of(s.rename(ino_of(s, kRootIno, "d"), "f", kRootIno, "moved", RENAME_WHITEOUT, r, kRoot));
               }});
  // The next inode base_setup leaves free: what O_TMPFILE makes.
  const Ino unnamed = 8;
  c.push_back({"tmpfile",
               [](Store& s, const Request& r) { return reply_of(s.create_unnamed(ino_of(s, kRootIno, "d"), 0640, kRoot, r)); },
               base_setup, {unnamed}});
  c.push_back({"link-tmpfile",
               [](Store& s, const Request& r) { return reply_of(s.link(unnamed, kRootIno, "named", r)); },
               [](Store& s) {
                 base_setup(s);
                 Ino t = made(s.create_unnamed(kRootIno, 0600, kRoot), s);
                 if (t != unnamed) throw std::runtime_error("the tmpfile is inode " + std::to_string(t));
                 must(s.write(t, 0, bytes(text(2 * kPageSize, 't')), kRoot));
               },
               {unnamed}});
  // An unlinked file kept by one open handle: its last release frees it.
  const Ino orphan = 8;
  c.push_back({"release-last",
               [](Store& s, const Request& r) {
                 s.release(orphan, r);
                 return std::string("released");
               },
               [](Store& s) {
                 base_setup(s);
                 Ino o = made(s.mknod(kRootIno, "o", S_IFREG | 0644, 0, kRoot), s);
                 if (o != orphan) throw std::runtime_error("the orphan is inode " + std::to_string(o));
                 must(s.write(o, 0, bytes(text(3 * kPageSize, 'o')), kRoot));
                 must(s.setxattr(o, "user.o", bytes("x"), 0));
                 must(s.open(o));
                 must(s.unlink(kRootIno, "o"));
               },
               {orphan}});
  c.push_back({"setattr-chmod-chown", [](Store& s, const Request& r) {
                 AttrChange ch;
                 ch.mode = 04711;
                 ch.uid = 7;
                 return reply_of(s.setattr(ino_of(s, kRootIno, "g"), ch, kRoot, r));
               }});
  c.push_back({"truncate-shrink", [](Store& s, const Request& r) {
                 AttrChange ch;
                 ch.size = 1000;
                 return reply_of(s.setattr(ino_of(s, ino_of(s, kRootIno, "d"), "f"), ch, kRoot, r));
               }});
  c.push_back({"truncate-grow", [](Store& s, const Request& r) {
                 AttrChange ch;
                 ch.size = 3 * kPageSize + 5;
                 return reply_of(s.setattr(ino_of(s, kRootIno, "g"), ch, kRoot, r));
               }});
  c.push_back({"write-new-pages", [](Store& s, const Request& r) {
                 return reply_of(s.write(ino_of(s, kRootIno, "g"), 100, bytes(text(3 * kPageSize, 'w')), kRoot, r));
               }});
  c.push_back({"write-over-and-past-the-end",
               [](Store& s, const Request& r) {
                 return reply_of(s.write(ino_of(s, ino_of(s, kRootIno, "d"), "f"), 4 * kPageSize,
                                         bytes(text(2 * kPageSize, 'W')), kRoot, r));
               },
               base_setup, {}, 1 << 20, true});
  c.push_back({"write-over",
               [](Store& s, const Request& r) {
                 return reply_of(s.write(ino_of(s, ino_of(s, kRootIno, "d"), "f"), 10, bytes(text(kPageSize, 'O')),
                                         kRoot, r));
               },
               base_setup, {}, 1 << 20, true});
  c.push_back({"write-short-at-the-quota",
               [](Store& s, const Request& r) {
                 return reply_of(s.write(ino_of(s, kRootIno, "g"), 0, bytes(text(4 * kPageSize, 's')), kRoot, r));
               },
               [](Store& s) {
                 base_setup(s);
                 Ino big = made(s.mknod(kRootIno, "big", S_IFREG | 0644, 0, kRoot), s);
                 std::uint64_t left = s.quota_pages() - s.pages_used();
                 must(s.write(big, 0, bytes(std::string((left - 2) * kPageSize, 'B')), kRoot));
               }});
  c.push_back({"fallocate", [](Store& s, const Request& r) {
                 return reply_of(s.fallocate(ino_of(s, kRootIno, "g"), 0, 10, 5 * kPageSize, r));
               }});
  c.push_back({"fallocate-keep-size", [](Store& s, const Request& r) {
                 return reply_of(s.fallocate(ino_of(s, ino_of(s, kRootIno, "d"), "f"), FALLOC_FL_KEEP_SIZE,
                                             3 * kPageSize, 6 * kPageSize, r));
               }});
  c.push_back({"punch", [](Store& s, const Request& r) {
                 return reply_of(s.fallocate(ino_of(s, ino_of(s, kRootIno, "d"), "f"),
                                             FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1000, 4 * kPageSize, r));
               }});
  c.push_back({"setxattr-new", [](Store& s, const Request& r) {
                 return reply_of(s.setxattr(ino_of(s, ino_of(s, kRootIno, "d"), "f"), "user.new",
                                            bytes(text(5000, 'x')), XATTR_CREATE, r));
               }});
  c.push_back({"setxattr-replace-longer", [](Store& s, const Request& r) {
                 return reply_of(s.setxattr(ino_of(s, ino_of(s, kRootIno, "d"), "f"), "user.a",
                                            bytes(text(6000, 'r')), XATTR_REPLACE, r));
               }});
  c.push_back({"setxattr-same-size", [](Store& s, const Request& r) {
                 return reply_of(s.setxattr(ino_of(s, ino_of(s, kRootIno, "d"), "f"), "user.a", bytes("other value"), 0, r));
               }});
  c.push_back({"removexattr", [](Store& s, const Request& r) {
                 return reply_of(s.removexattr(ino_of(s, ino_of(s, kRootIno, "d"), "f"), "user.a", r));
               }});
  // POSIX ACLs: the mode and the ACL xattr change in one tx (set, chmod), and a new inode's
  // inherited ACLs come in the tx that makes it.
  c.push_back({"setxattr-access-acl", [](Store& s, const Request& r) {
                 return reply_of(s.setxattr(ino_of(s, ino_of(s, kRootIno, "d"), "f"), acl::kAccessName,
                                            acl_bytes(), 0, r, true));
               }});
  c.push_back({"chmod-with-an-acl",
               [](Store& s, const Request& r) {
                 AttrChange ch;
                 ch.mode = 0750;
                 return reply_of(s.setattr(ino_of(s, ino_of(s, kRootIno, "d"), "f"), ch, kRoot, r));
               },
               [](Store& s) {
                 base_setup(s);
                 must(s.setxattr(ino_of(s, ino_of(s, kRootIno, "d"), "f"), acl::kAccessName, acl_bytes(), 0));
               }});
  for (bool dir : {false, true})
    c.push_back({dir ? "mkdir-inheriting-a-default-acl" : "create-inheriting-a-default-acl",
                 [dir](Store& s, const Request& r) {
                   const Caller masked{0, 0, true, 077};
                   Ino d = ino_of(s, kRootIno, "d");
                   return reply_of(dir ? s.mkdir(d, "sub", 0777, masked, r) : s.mknod(d, "new", S_IFREG | 0666, 0, masked, r));
                 },
                 [](Store& s) {
                   base_setup(s);
                   must(s.setxattr(ino_of(s, kRootIno, "d"), acl::kDefaultName, acl_bytes(), 0));
                 }});
  c.push_back({"copy-file-range", [](Store& s, const Request& r) {
                 return reply_of(s.copy_file_range(ino_of(s, ino_of(s, kRootIno, "d"), "f"), 10, ino_of(s, kRootIno, "g"),
                                                   0, 3 * kPageSize, 0, kRoot, r));
               }});
  return c;
}

class CrashSweep : public ::testing::TestWithParam<Case> {
 protected:
  StoreOptions options() const { return StoreOptions{.size_bytes = GetParam().size, .chunk_pages = 2}; }
  StoreFiles fresh() const { return StoreFiles::make(options(), GetParam().setup); }
  // The same bytes every time: the sweep's k-th change is the same change in every run.
  StoreFiles copy() {
    if (!template_.meta) template_ = fresh();
    return template_.clone();
  }
  StoreFiles template_;
};

TEST_P(CrashSweep, EveryStepIsAllOrNothingAndTheResendIsAnsweredOnce) {
  const Case& c = GetParam();
  const Request req{0x5a5a0};
  const Request resent{req.unique | Request::kResend};
  Snapshot before, after;
  std::string want;
  {
    StoreFiles f = copy();
    auto s = must(f.attach(), "attach");
    before = snapshot(*s, c.unnamed);
    want = c.op(*s, req);
    after = snapshot(*s, c.unnamed);
    ASSERT_NE(before, after) << "the operation changes nothing: the test would test nothing";
    // A resend after the reply was lost: answered from the record, applied once.
    EXPECT_EQ(c.op(*s, resent), want);
    EXPECT_EQ(snapshot(*s, c.unnamed), after);
  }
  std::uint64_t kills = 0, applied = 0;
  bool survived = false;
  // Kills the child at step k (before and after it); `survived` once no step k is reached.
  auto crash_at = [&](std::uint64_t k) {
    for (auto when : {crash_point::When::kBefore, crash_point::When::kAfter}) {
      const std::string at = std::to_string(k) + (when == crash_point::When::kAfter ? "+" : "");
      StoreFiles f = copy();
      auto child = ChildProcess::fork([&] {
        auto s = f.attach();
        if (!s) return 3;
        crash_point::arm(k, when);
        c.op(*s.value(), req);
        crash_point::disarm();
        return 0;
      });
      const int status = child.wait();
      ASSERT_TRUE(status == 0 || status == 128 + SIGKILL) << "crash point " << at << ": exit status " << status;
      std::string why;
      auto s = f.attach(&why);
      ASSERT_TRUE(s) << "crash point " << at << ": the store was refused: " << why;
      auto problem = s.value()->verify();
      ASSERT_FALSE(problem) << "crash point " << at << ": " << *problem;
      Snapshot got = snapshot(*s.value(), c.unnamed);
      if (status == 0) {
        survived = true;
        ASSERT_EQ(got, after) << "the child finished the operation";
      } else {
        ++kills;
        if (got == after) ++applied;
        ASSERT_TRUE(got == after || got == before || (c.overwrites && torn_write(got, before, after)))
            << "crash point " << at << ": half an operation";
      }
      EXPECT_EQ(c.op(*s.value(), resent), want) << "crash point " << at << ": the resend's reply";
      ASSERT_EQ(snapshot(*s.value(), c.unnamed), after) << "crash point " << at << ": after the resend";
      if (survived) break;
    }
  };
  std::uint64_t last = 1;
  for (; !survived; last += kStride) {
    crash_at(last);
    if (HasFatalFailure()) return;
  }
  // A stride must not skip the last steps, where the commit is: those one by one.
  const std::uint64_t end = last - kStride;
  for (std::uint64_t k = end > kStride ? end - kStride + 1 : 1; k < end; ++k) {
    if (k % kStride == 1 % kStride) continue;  // taken above
    survived = false;  // both kills at k, unless the child gets past it
    crash_at(k);
    if (HasFatalFailure()) return;
  }
  std::printf("%s: %llu kills, the operation there after %llu of them\n", c.name.c_str(),
              static_cast<unsigned long long>(kills), static_cast<unsigned long long>(applied));
  EXPECT_GT(kills, 0u);
  EXPECT_GT(applied, 0u);  // some kills fall after the commit point
  // and some before it (a pure overwrite shows its new bytes before its tx: they are not
  // journaled, and its tx changes only times, which a snapshot leaves out)
  if (!c.overwrites) {
    EXPECT_LT(applied, kills);
  }
}

INSTANTIATE_TEST_SUITE_P(Store, CrashSweep, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& p) {
                           std::string n = p.param.name;
                           for (char& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

}  // namespace
}  // namespace hostchanfs::shm::testing
