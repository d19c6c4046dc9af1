// How many FUSE requests each workload sends: the round trips the speed of a FUSE file
// system is made of (issue 7). Counts are exact, unlike times, so they are tested. The
// daemon prints every request (libfuse's trace, HOSTCHANFS_FUSE_DEBUG); each workload runs
// in a child process of its own, and its requests are the trace lines from its first to
// its last line naming its pid (requests the kernel sends for it with pid 0, such as
// RELEASE, fall inside). FORGET and BATCH_FORGET expect no reply and are not round trips.
//
// What is pinned, and why it matters:
//   - dd bs=1K sends one WRITE per write(2): FUSE_HANDLE_KILLPRIV_V2 is negotiated, so no
//     GETXATTR(security.capability) precedes each write (the first write of a new file
//     still sends one; the kernel then marks the inode S_NOSEC);
//   - close sends no FLUSH (flush answers ENOSYS once per connection);
//   - cached stat and warm reads send nothing (long timeouts, keep_cache);
//   - a cold sequential read moves 1 MiB per READ (max_pages, readahead);
//   - metadata operations send no more than the kernel asks for. The kernel's own share:
//     a LOOKUP of a new name before CREATE, MKDIR and RENAME (the dentry is not cached),
//     and a GETATTR of the directory after each change to it: fuse_dir_changed()
//     invalidates all its attributes, and the permission check of default_permissions
//     then needs mode, uid and gid afresh.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "sys/unique_fd.hpp"
#include "tests/support/fuse_test.hpp"
#include "tests/support/scoped_mounts.hpp"

namespace hostchanfs::testing {
namespace {

constexpr int kOps = 100;

// opcode -> how many, for one workload.
using Counts = std::map<std::string, int>;

std::string describe(const Counts& c) {
  std::ostringstream s;
  for (const auto& [op, n] : c) s << op << "=" << n << " ";
  return s.str();
}

int round_trips(const Counts& c) {
  int n = 0;
  for (const auto& [op, k] : c)
    if (op != "FORGET" && op != "BATCH_FORGET") n += k;
  return n;
}

int count_of(const Counts& c, const std::string& op) {
  auto it = c.find(op);
  return it == c.end() ? 0 : it->second;
}

class Requests : public FuseTest {
 protected:
  void SetUp() override {
    FuseTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    trace_.reset(::memfd_create("requests", MFD_CLOEXEC));
    ASSERT_TRUE(trace_);
    ScopedHostchanfs::Options o;
    o.size_bytes = 64ull << 20;
    o.request_trace_fd = trace_.get();
    o.extra_args = extra_args_;
    fs_ = std::make_unique<ScopedHostchanfs>(o);
    // Once per connection the kernel learns that FLUSH is not implemented: not part of
    // any workload below. The warm-up also proves the trace is read: were it not, every
    // count would be 0 and "sends nothing" would pass without counting anything.
    Counts warm_up = run([&] {
      return UniqueFd(::open(path("warm-up").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644)) ? 0 : 1;
    });
    ASSERT_EQ(count_of(warm_up, "CREATE"), 1) << "the request trace was not read: " << describe(warm_up);
  }
  void TearDown() override {
    fs_.reset();
    FuseTest::TearDown();
  }

  std::string path(const std::string& name) const { return fs_->path() + "/" + name; }

  std::vector<std::string> extra_args_;  // for the daemon, set before SetUp

  // Runs `body` in a child process (exit status 0 = it worked) and returns the requests
  // the daemon received for it.
  Counts run(const std::function<int()>& body) {
    ChildProcess child = ChildProcess::fork(body);
    pid_t pid = child.pid();
    EXPECT_EQ(child.wait(), 0) << "the workload itself failed";
    return requests_of(pid);
  }

 private:
  Counts requests_of(pid_t pid) const {
    std::string text;
    char buf[65536];
    ssize_t n;
    while ((n = ::pread(trace_.get(), buf, sizeof buf, static_cast<off_t>(text.size()))) > 0)
      text.append(buf, static_cast<std::size_t>(n));
    static const std::regex line(R"(opcode: ([A-Z_]+) \(\d+\), nodeid: \d+, insize: \d+, pid: (\d+))");
    std::vector<std::pair<std::string, pid_t>> requests;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) {
      std::smatch m;
      if (std::regex_search(l, m, line)) requests.emplace_back(m[1], static_cast<pid_t>(std::stol(m[2])));
    }
    std::size_t first = requests.size(), last = 0;
    for (std::size_t i = 0; i < requests.size(); ++i)
      if (requests[i].second == pid) {
        first = std::min(first, i);
        last = i;
      }
    Counts c;
    for (std::size_t i = first; i <= last && i < requests.size(); ++i) ++c[requests[i].first];
    return c;
  }

  UniqueFd trace_;
  std::unique_ptr<ScopedHostchanfs> fs_;
};

int write_all(int fd, const std::vector<char>& data, std::size_t record) {
  for (std::size_t off = 0; off < data.size(); off += record)
    if (::write(fd, data.data() + off, record) != static_cast<ssize_t>(record)) return 1;
  return 0;
}

int create_file(const std::string& p, std::size_t bytes) {
  UniqueFd fd(::open(p.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644));
  if (!fd) return 1;
  return bytes ? write_all(fd.get(), std::vector<char>(bytes, 'x'), bytes) : 0;
}

TEST_F(Requests, SeedDdSendsOneWritePerWriteAndNoFlush) {
  Counts c = run([&] {
    UniqueFd fd(::open(path("test.file").c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644));
    return fd ? write_all(fd.get(), std::vector<char>(kOps * 1024, 0), 1024) : 1;
  });
  EXPECT_EQ(count_of(c, "WRITE"), kOps) << describe(c);
  EXPECT_LE(count_of(c, "GETXATTR"), 1) << "a GETXATTR per write: KILLPRIV_V2 not negotiated? " << describe(c);
  EXPECT_EQ(count_of(c, "FLUSH"), 0) << describe(c);
  // Besides the writes: LOOKUP and CREATE of the new name, the directory's GETATTR, the
  // first write's GETXATTR, and possibly RELEASE.
  EXPECT_LE(round_trips(c), kOps + 5) << describe(c);
}

TEST_F(Requests, CachedStatSendsNothing) {
  run([&] {
    for (int i = 0; i < kOps; ++i)
      if (create_file(path("f" + std::to_string(i)), 0)) return 1;
    return 0;
  });
  auto stat_all = [&] {
    struct stat st {};
    for (int i = 0; i < kOps; ++i)
      if (::stat(path("f" + std::to_string(i)).c_str(), &st) < 0) return 1;
    return 0;
  };
  // The creates changed the directory: the first path walk's permission check asks for
  // its attributes once (the kernel's share); from then on everything is cached.
  run(stat_all);
  Counts c = run([&] { return stat_all() || stat_all() || stat_all(); });
  EXPECT_EQ(round_trips(c), 0) << describe(c);
}

TEST_F(Requests, WarmReadSendsNoRead) {
  constexpr std::size_t kBytes = 4 << 20;
  run([&] { return create_file(path("data"), kBytes); });
  auto read_through = [&] {
    UniqueFd fd(::open(path("data").c_str(), O_RDONLY | O_CLOEXEC));
    std::vector<char> buf(1 << 20);
    std::size_t total = 0;
    for (ssize_t n; fd && (n = ::read(fd.get(), buf.data(), buf.size())) > 0;) total += static_cast<std::size_t>(n);
    return total == kBytes ? 0 : 1;
  };
  run(read_through);  // warms the page cache
  Counts c = run(read_through);
  EXPECT_EQ(count_of(c, "READ"), 0) << "keep_cache lost? " << describe(c);
}

// Reads all of `fd` from where it is, cold: the bytes read, or 0 when it cannot drop the
// cache first. Written through, the file's pages are clean: DONTNEED drops them.
std::size_t read_cold(int fd) {
  if (fd < 0 || ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0) return 0;
  std::vector<char> buf(1 << 20);
  std::size_t total = 0;
  for (ssize_t n; (n = ::read(fd, buf.data(), buf.size())) > 0;) total += static_cast<std::size_t>(n);
  return total;
}

TEST_F(Requests, ColdSequentialReadMovesAMebibytePerRead) {
  constexpr std::size_t kBytes = 8 << 20;
  run([&] { return create_file(path("data"), kBytes); });
  Counts c = run([&] {
    UniqueFd fd(::open(path("data").c_str(), O_RDONLY | O_CLOEXEC));
    return read_cold(fd.get()) == kBytes ? 0 : 1;
  });
  EXPECT_EQ(count_of(c, "READ"), 8) << "not 1 MiB per READ: readahead or max_pages lost? " << describe(c);
}

// --charge writer: the kernel moves regular files' data itself (FUSE passthrough onto the
// backing tmpfs), so reads, writes and mappings send no request at all.
class WriterRequests : public Requests {
 protected:
  WriterRequests() { extra_args_ = {"--charge", "writer"}; }
};

TEST_F(WriterRequests, SeedDdSendsNoWrite) {
  Counts c = run([&] {
    UniqueFd fd(::open(path("test.file").c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644));
    return fd ? write_all(fd.get(), std::vector<char>(kOps * 1024, 0), 1024) : 1;
  });
  EXPECT_EQ(count_of(c, "WRITE"), 0) << describe(c);
  EXPECT_EQ(count_of(c, "CREATE"), 1) << describe(c);
  // LOOKUP, CREATE, the directory's GETATTR, GETXATTR at the first write, RELEASE: no
  // request per write(2).
  EXPECT_LE(round_trips(c), 6) << describe(c);
}

TEST_F(WriterRequests, ColdReadAndMappingSendNoReadOrWrite) {
  constexpr std::size_t kBytes = 8 << 20;
  run([&] { return create_file(path("data"), kBytes); });
  Counts c = run([&] {
    UniqueFd fd(::open(path("data").c_str(), O_RDWR | O_CLOEXEC));
    std::size_t total = read_cold(fd.get());
    void* map = ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (map == MAP_FAILED) return 1;
    static_cast<char*>(map)[kBytes - 1] = 'y';
    int synced = ::msync(map, kBytes, MS_SYNC);
    ::munmap(map, kBytes);
    return total == kBytes && synced == 0 ? 0 : 1;
  });
  EXPECT_EQ(count_of(c, "READ"), 0) << describe(c);
  EXPECT_EQ(count_of(c, "WRITE"), 0) << describe(c);
  EXPECT_EQ(count_of(c, "OPEN"), 1) << "the workload's open was not seen: " << describe(c);
}

// An open for reading costs the OPEN alone: passthrough reads keep the file's atime in
// its backing file, so the open moves no atime in the store, and invalidates no attribute
// the kernel holds: a stat after it is answered from the kernel's cache.
TEST_F(WriterRequests, AnOpenForReadingLeavesTheCachedAttributesValid) {
  run([&] { return create_file(path("data"), 4096); });
  struct stat cached {};  // the kernel holds the file's attributes from here on
  ASSERT_EQ(::stat(path("data").c_str(), &cached), 0);
  Counts c = run([&] {
    UniqueFd fd(::open(path("data").c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    return fd && ::stat(path("data").c_str(), &st) == 0 ? 0 : 1;
  });
  EXPECT_EQ(count_of(c, "OPEN"), 1) << "the workload's open was not seen: " << describe(c);
  EXPECT_EQ(count_of(c, "GETATTR"), 0) << describe(c);
}

struct MetadataCase {
  const char* name;
  int max_round_trips_per_op;  // the kernel's share, see the top of this file
  std::function<int(const std::string& dir, int i)> prepare;  // once per i, not counted
  std::function<int(const std::string& dir, int i)> op;
};

void PrintTo(const MetadataCase& m, std::ostream* os) { *os << m.name; }

std::string nth(const std::string& dir, const char* prefix, int i) { return dir + "/" + prefix + std::to_string(i); }

class MetadataRequests : public Requests, public ::testing::WithParamInterface<MetadataCase> {};

TEST_P(MetadataRequests, SendNoMoreThanTheKernelAsksFor) {
  const MetadataCase& m = GetParam();
  std::string dir = path("dir");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  run([&] {
    for (int i = 0; i < kOps; ++i)
      if (m.prepare && m.prepare(dir, i)) return 1;
    return 0;
  });
  Counts c = run([&] {
    for (int i = 0; i < kOps; ++i)
      if (m.op(dir, i)) return 1;
    return 0;
  });
  EXPECT_LE(round_trips(c), m.max_round_trips_per_op * kOps) << m.name << ": " << describe(c);
  EXPECT_EQ(count_of(c, "FLUSH"), 0) << describe(c);
}

INSTANTIATE_TEST_SUITE_P(
    Operations, MetadataRequests,
    ::testing::Values(
        // LOOKUP (new name), CREATE, RELEASE, GETATTR of the directory.
        MetadataCase{"create", 4, nullptr, [](const std::string& d, int i) { return create_file(nth(d, "f", i), 0); }},
        // ... and the first write's GETXATTR(security.capability), WRITE.
        MetadataCase{"create-write4k-close", 6, nullptr,
                     [](const std::string& d, int i) { return create_file(nth(d, "f", i), 4096); }},
        // UNLINK, GETATTR of the directory.
        MetadataCase{"unlink", 2, [](const std::string& d, int i) { return create_file(nth(d, "f", i), 0); },
                     [](const std::string& d, int i) { return ::unlink(nth(d, "f", i).c_str()) == 0 ? 0 : 1; }},
        // LOOKUP (new name), MKDIR, GETATTR of the directory.
        MetadataCase{"mkdir", 3, nullptr,
                     [](const std::string& d, int i) { return ::mkdir(nth(d, "g", i).c_str(), 0755) == 0 ? 0 : 1; }},
        // RMDIR, GETATTR of the directory.
        MetadataCase{"rmdir", 2,
                     [](const std::string& d, int i) { return ::mkdir(nth(d, "g", i).c_str(), 0755) == 0 ? 0 : 1; },
                     [](const std::string& d, int i) { return ::rmdir(nth(d, "g", i).c_str()) == 0 ? 0 : 1; }},
        // LOOKUP (new name), RENAME, GETATTR of the directory.
        MetadataCase{"rename", 3, [](const std::string& d, int i) { return create_file(nth(d, "f", i), 0); },
                     [](const std::string& d, int i) {
                       return ::rename(nth(d, "f", i).c_str(), nth(d, "r", i).c_str()) == 0 ? 0 : 1;
                     }}),
    [](const ::testing::TestParamInfo<MetadataCase>& param) {
      std::string n = param.param.name;
      for (char& ch : n)
        if (ch == '-') ch = '_';
      return n;
    });

}  // namespace
}  // namespace hostchanfs::testing
