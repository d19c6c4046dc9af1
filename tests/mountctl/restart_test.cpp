// No single SIGKILL loses a channel (issue 15): real channels made by a real controller,
// real processes using them, and real SIGKILLs of the daemon, the keeper and the
// controller. What each test holds: the programs using the channel see no error and no
// hang, every effect a system call acknowledged is there afterwards (by checksum), and the
// usage the controller reports is exact. Nothing here asserts a time: the bounds in
// eventually() only turn a hang into a failure.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fs/backing_ids.hpp"
#include "fs/fuse_abi.hpp"
#include "fs/session_clones.hpp"
#include "fs/session_record.hpp"
#include "tests/mountctl/harness.hpp"
#include "tests/support/files.hpp"

namespace hostchanfs::testing {
namespace {

using json = nlohmann::json;
using RestartTest = CheckedControllerTest;

std::uint64_t fnv1a(const std::string& bytes) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ULL;
  return h;
}

// What a channel holds: each regular file's checksum and size, and the directories.
struct Tree {
  std::map<std::string, std::pair<std::uint64_t, std::size_t>> files;
  std::set<std::string> dirs;
  bool operator==(const Tree&) const = default;

  std::uint64_t pages() const {
    std::uint64_t n = 0;
    for (const auto& [name, f] : files) n += (f.second + 4095) / 4096;
    return n;
  }
  std::string describe() const {
    std::string s;
    for (const auto& d : dirs) s += "D " + d + "\n";
    for (const auto& [name, f] : files) s += "F " + name + " " + std::to_string(f.second) + "\n";
    return s;
  }
};

Tree walk(const std::string& root) {
  Tree t;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    std::string rel = std::filesystem::relative(e.path(), root).string();
    if (e.is_directory()) {
      t.dirs.insert(rel);
    } else {
      std::string bytes = read_file(e.path().string());
      t.files[rel] = {fnv1a(bytes), bytes.size()};
    }
  }
  return t;
}

// The channel's one line of `ls --json`.
json channel_of() {
  auto r = hostchanfs({"ls", "--json"});
  EXPECT_EQ(r.status, 0) << r.err;
  json list = json::parse(r.out);
  return list.size() == 1 ? list[0] : json::object();
}

// `sig` (SIGKILL unless told) to `pid`, if it still is a `serve` or `keep` of `host`
// (never another process that reused the pid).
bool kill_process_of(pid_t pid, const std::string& role, const std::string& host, int sig = SIGKILL) {
  if (pid <= 0) return false;
  auto pidfd = open_pidfd(pid);
  if (!pidfd) return false;
  std::string cmd = read_small_file("/proc/" + std::to_string(pid) + "/cmdline");
  if (cmd.find(std::string("\0", 1) + role + std::string("\0", 1)) == std::string::npos ||
      cmd.find(host) == std::string::npos) {
    return false;
  }
  return signal_pidfd(pidfd.value().get(), sig).has_value();
}

// Whether daemon `pid` serves on clones of /dev/fuse (fs/session_clones.hpp).
bool has_clones(pid_t pid) {
  std::string cmd = read_small_file("/proc/" + std::to_string(pid) + "/cmdline");
  return cmd.find(std::string("\0--fuse-clone-fds\0", 18)) != std::string::npos;
}

// Kills the channel's daemon and waits until its keeper has started the next one.
void kill_daemon_and_wait(const std::string& host) {
  json before = channel_of();
  pid_t daemon = before.value("daemon_pid", 0);
  std::uint64_t restarts = before.value("restarts", 0ULL);
  ASSERT_TRUE(kill_process_of(daemon, "serve", host)) << before.dump();
  ASSERT_TRUE(eventually([&] {
    json now = channel_of();
    return now.value("restarts", 0ULL) > restarts && now.value("daemon_pid", 0) > 0 &&
           now.value("daemon_pid", 0) != daemon;
  })) << channel_of().dump();
}

// A writer that creates, writes, renames, appends, unlinks, makes directories and reads
// back, until `stop` is readable; the first error ends it with status 1 (and the failed
// step on stderr). It also keeps one file ("log") open from start to end, appends to it
// through that descriptor and reopens it by name to read it back: with --charge writer,
// an open of an inode that is open through a dead daemon's backing id. What it leaves is
// written to `manifest_fd` as the Tree it must be.
int writer(const std::string& root, int stop, int manifest_fd) {
  std::mt19937 rng(15);
  Tree want;
  std::map<std::string, std::string> contents;
  auto fail = [](const std::string& what, const std::string& path) {
    std::fprintf(stderr, "writer: %s %s: %s\n", what.c_str(), path.c_str(), std::strerror(errno));
    return 1;
  };
  auto write_all = [](int fd, const std::string& bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (n <= 0) return false;
      done += static_cast<std::size_t>(n);
    }
    return true;
  };
  std::string last;
  UniqueFd log(::open((root + "/log").c_str(), O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644));
  if (!log) return fail("create", "log");
  contents["log"] = "";
  for (int i = 0;; ++i) {
    pollfd p{stop, POLLIN, 0};
    if (::poll(&p, 1, 0) > 0) break;
    std::string line = "line " + std::to_string(i) + "\n";
    if (!write_all(log.get(), line)) return fail("append", "log");
    contents["log"] += line;
    if (i % 7 == 3 && read_file(root + "/log") != contents["log"]) {
      std::fprintf(stderr, "writer: log does not hold what was appended\n");
      return 1;
    }
    std::string dir = "d" + std::to_string(i / 10);
    if (i % 10 == 0) {
      if (::mkdir((root + "/" + dir).c_str(), 0755) < 0) return fail("mkdir", dir);
      want.dirs.insert(dir);
    }
    std::string tmp = dir + "/tmp" + std::to_string(i), name = dir + "/f" + std::to_string(i);
    std::string bytes(1 + rng() % 20000, '\0');
    for (char& c : bytes) c = static_cast<char>('a' + rng() % 26);
    int fd = ::open((root + "/" + tmp).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return fail("create", tmp);
    bool wrote = write_all(fd, bytes);
    if (!wrote) return fail("write", tmp);
    if (::close(fd) < 0) return fail("close", tmp);
    if (::rename((root + "/" + tmp).c_str(), (root + "/" + name).c_str()) < 0) return fail("rename", tmp);
    contents[name] = bytes;
    if (!last.empty() && contents.contains(last)) {
      std::string more(100 + rng() % 5000, static_cast<char>('A' + i % 26));
      fd = ::open((root + "/" + last).c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
      if (fd < 0) return fail("open for append", last);
      if (!write_all(fd, more)) return fail("append", last);
      if (::close(fd) < 0) return fail("close", last);
      contents[last] += more;
    }
    if (i % 3 == 2 && !last.empty() && contents.contains(last)) {
      if (::unlink((root + "/" + last).c_str()) < 0) return fail("unlink", last);
      contents.erase(last);
    }
    // Bounded: the oldest files go once the data passes 8 MiB (the channel has 64).
    std::size_t total = 0;
    for (const auto& [n, b] : contents) total += b.size();
    auto number = [](const std::string& file) {
      return file == "log" ? INT_MAX : std::stoi(file.substr(file.rfind('f') + 1));
    };
    while (total > (8u << 20)) {
      auto oldest = std::min_element(contents.begin(), contents.end(),
                                     [&](const auto& a, const auto& b) { return number(a.first) < number(b.first); });
      if (::unlink((root + "/" + oldest->first).c_str()) < 0) return fail("unlink", oldest->first);
      total -= oldest->second.size();
      contents.erase(oldest);
    }
    if (i % 5 == 4) {  // read one back, as fsx does
      auto it = std::next(contents.begin(), static_cast<long>(rng() % contents.size()));
      if (read_file(root + "/" + it->first) != it->second) {
        std::fprintf(stderr, "writer: %s does not hold what was written\n", it->first.c_str());
        return 1;
      }
    }
    last = name;
  }
  if (::close(log.release()) < 0) return fail("close", "log");
  for (const auto& [name, bytes] : contents) want.files[name] = {fnv1a(bytes), bytes.size()};
  std::string text = want.describe();
  for (const auto& [name, f] : want.files) text += "C " + name + " " + std::to_string(f.first) + "\n";
  return ::pwrite(manifest_fd, text.data(), text.size(), 0) == static_cast<ssize_t>(text.size()) ? 0 : 1;
}

Tree parse_manifest(const std::string& text) {
  Tree t;
  std::istringstream in(text);
  std::string kind, name;
  while (in >> kind >> name) {
    if (kind == "D") t.dirs.insert(name);
    if (kind == "F") in >> t.files[name].second;
    if (kind == "C") in >> t.files[name].first;
  }
  return t;
}

void expect_usage(const std::string& host, const Tree& tree) {
  json ch = channel_of();
  EXPECT_EQ(ch.value("bytes_used", 0ULL), tree.pages() * 4096) << tree.describe();
  EXPECT_EQ(ch.value("inodes_used", 0ULL), 1 + tree.files.size() + tree.dirs.size());
  struct statvfs sv {};
  ASSERT_EQ(::statvfs(host.c_str(), &sv), 0);
  EXPECT_EQ((sv.f_blocks - sv.f_bfree) * sv.f_frsize, tree.pages() * 4096);
}

// The descriptor of `keeper`'s whose /proc link starts with `link`, as one of ours: the
// same open file (pidfd_getfd), so that an ioctl on it acts on the channel's connection.
UniqueFd descriptor_of(pid_t keeper, const std::string& link) {
  auto pidfd = open_pidfd(keeper);
  if (!pidfd) return UniqueFd();
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(keeper) + "/fd", ec)) {
    std::error_code lec;
    if (!std::filesystem::read_symlink(e.path(), lec).string().starts_with(link)) continue;
    int target = std::stoi(e.path().filename().string());
    return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.value().get(), target, 0)));
  }
  return UniqueFd();
}

// --charge writer, once no file is open: no backing id is left on the channel's
// connection, neither one the daemons recorded nor one the kernel holds that no record
// names (a daemon killed between FUSE_DEV_IOC_BACKING_OPEN and writing it down). Each id
// up to the last one handed out, and the next, is closed here: none may still exist.
void expect_no_backing_id_left() {
  pid_t keeper = channel_of().value("keeper_pid", 0);
  UniqueFd record = descriptor_of(keeper, "/memfd:hostchanfs-session");
  UniqueFd fuse = descriptor_of(keeper, "/dev/fuse");
  ASSERT_TRUE(record && fuse) << "keeper " << keeper << ": " << std::strerror(errno);
  // The kernel sends RELEASE after close(2) has returned.
  ASSERT_TRUE(eventually([&] {
    auto seen = fs::peek_backing_ids(record.get());
    return seen && seen.value().live.empty();
  })) << fs::peek_backing_ids(record.get()).value().live.size() << " backing ids still recorded";
  auto seen = fs::peek_backing_ids(record.get());
  ASSERT_TRUE(seen);
  EXPECT_GT(seen.value().last_id, 0) << "no file was opened through passthrough";
  int left = 0;
  for (std::int32_t id = 1; id <= seen.value().last_id + 1; ++id) {
    auto arg = static_cast<std::uint32_t>(id);
    if (::ioctl(fuse.get(), fs::abi::kDevIocBackingClose, &arg) == 0) {
      ++left;
    } else {
      EXPECT_EQ(errno, ENOENT) << "backing id " << id;
    }
  }
  EXPECT_EQ(left, 0) << "backing ids leaked on the connection (of " << seen.value().last_id << " handed out)";
}

// Both charges: the kills are the same, what differs is where the data lives (the store,
// or backing files whose ids the connection keeps across daemons).
class KilledUnderLoad : public RestartTest, public ::testing::WithParamInterface<const char*> {
 protected:
  void mount_channel(const std::string& host, const std::string& size) {
    auto r = hostchanfs({"mount", "--charge", GetParam(), host + ":/data::" + size});
    ASSERT_EQ(r.status, 0) << r.err;
  }
  bool writer_charged() const { return std::string_view(GetParam()) == "writer"; }
};

TEST_P(KilledUnderLoad, AWriterSeesNoErrorWhileItsDaemonIsKilledAgainAndAgain) {
  std::string host = world_->path("chan");
  ASSERT_NO_FATAL_FAILURE(mount_channel(host, "64M"));
  int stop[2];
  ASSERT_EQ(::pipe2(stop, O_CLOEXEC), 0);
  UniqueFd stop_read(stop[0]), stop_write(stop[1]);
  UniqueFd manifest(::memfd_create("manifest", MFD_CLOEXEC));
  ChildProcess w = ChildProcess::fork([&] { return writer(host, stop_read.get(), manifest.get()); });

  constexpr int kKills = 25;
  std::mt19937 rng(42);
  for (int kill = 0; kill < kKills; ++kill) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + rng() % 250));
    ASSERT_FALSE(w.wait_for(std::chrono::milliseconds(0))) << "the writer ended early";
    ASSERT_NO_FATAL_FAILURE(kill_daemon_and_wait(host)) << "kill " << kill;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_EQ(::write(stop_write.get(), "x", 1), 1);
  EXPECT_EQ(w.wait(), 0) << "the writer saw an error (its stderr says which)";

  std::string text(1 << 20, '\0');
  text.resize(static_cast<std::size_t>(std::max<ssize_t>(0, ::pread(manifest.get(), text.data(), text.size(), 0))));
  Tree want = parse_manifest(text);
  ASSERT_GT(want.files.size(), 10u) << "the writer did too little to test anything";
  Tree got = walk(host);
  EXPECT_EQ(got, want) << "got:\n" << got.describe() << "want:\n" << want.describe();
  EXPECT_GE(channel_of().value("restarts", 0ULL), static_cast<std::uint64_t>(kKills));
  expect_usage(host, want);
  EXPECT_EQ(channel_of().value("state", ""), "running");
  auto table = hostchanfs({"ls"});
  EXPECT_NE(table.out.find("RESTARTS"), std::string::npos) << table.out;
  // The metrics count them too.
  auto metrics = hostchanfs({"metrics"});
  ASSERT_EQ(metrics.status, 0) << metrics.err;
  std::istringstream lines(metrics.out);
  std::optional<double> restarts;
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("hostchanfs_channel_daemon_restarts_total{") && line.find(host) != std::string::npos)
      restarts = std::stod(line.substr(line.rfind(' ') + 1));
  }
  ASSERT_TRUE(restarts) << metrics.out;
  EXPECT_GE(*restarts, kKills) << metrics.out;
  if (writer_charged()) expect_no_backing_id_left();
  EXPECT_EQ(hostchanfs({"umount", host}).status, 0);
}

// The in-flight slots of the channel's session record (read through its keeper's
// descriptor): how many worker threads have read a request and not answered it.
std::size_t requests_in_flight(pid_t keeper) {
  UniqueFd fd(::open(("/proc/" + std::to_string(keeper) + "/fd/6").c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return 0;
  std::vector<std::uint64_t> slots(fs::kInFlightSlots);
  if (::pread(fd.get(), slots.data(), slots.size() * 8, fs::kInFlightOffset) != static_cast<ssize_t>(slots.size() * 8)) return 0;
  return static_cast<std::size_t>(std::count_if(slots.begin(), slots.end(), [](std::uint64_t u) { return u != 0; }));
}

std::size_t threads_of(pid_t pid) {
  std::error_code ec;
  std::size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    (void)e;
    ++n;
  }
  return n;
}

// NAME=value for the test's controller and every process it starts; unset on scope exit.
struct ScopedEnv {
  std::vector<std::string> names;
  ScopedEnv(std::initializer_list<std::pair<const char*, const char*>> set) {
    for (auto [name, value] : set) {
      ::setenv(name, value, 1);
      names.emplace_back(name);
    }
  }
  ~ScopedEnv() {
    for (const auto& n : names) ::unsetenv(n.c_str());
  }
};

// Processes that each create a file (O_EXCL, in a directory of its own: the kernel
// serializes creates in one directory) and write it, while the channel's first daemon
// holds every CREATE it has applied without answering it (HOSTCHANFS_TEST_HOLD_CREATES)
// until each of its worker threads holds one; then the daemon is killed. Each process's
// exit status is 0 or the errno it got. Should the test fail before the kill, the
// daemon is killed on the way out all the same, so that no process stays waiting.
struct InFlight {
  static constexpr int kMakers = 48;  // above the daemon's worker threads, on any machine
  std::string host;
  std::vector<ChildProcess> makers;
  pid_t daemon = 0;  // the first daemon, the one that holds

  explicit InFlight(std::string channel) : host(std::move(channel)) {}
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;
  ~InFlight() { kill_process_of(daemon, "serve", host); }  // gone already unless a test failed
  static std::string name(int i) { return "d" + std::to_string(i) + "/f"; }
  static std::string bytes(int i) { return std::string(5000 + i, 'm'); }
  void start() {
    for (int i = 0; i < kMakers; ++i) {
      if (::mkdir((host + "/d" + std::to_string(i)).c_str(), 0755) < 0) throw std::runtime_error("mkdir");
    }
    for (int i = 0; i < kMakers; ++i) {
      makers.push_back(ChildProcess::fork([this, i] {
        int fd = ::open((host + "/" + name(i)).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) return errno;
        std::string b = bytes(i);
        bool ok = ::write(fd, b.data(), b.size()) == static_cast<ssize_t>(b.size());
        int err = errno;
        if (::close(fd) < 0) return errno;
        return ok ? 0 : err;
      }));
    }
  }
  Tree want() const {
    Tree t;
    for (int i = 0; i < kMakers; ++i) {
      t.dirs.insert("d" + std::to_string(i));
      t.files[name(i)] = {fnv1a(bytes(i)), bytes(i).size()};
    }
    return t;
  }
};

void hold_every_worker(InFlight& flight) {
  json ch = channel_of();
  pid_t keeper = ch.value("keeper_pid", 0);
  flight.daemon = ch.value("daemon_pid", 0);
  ASSERT_GT(keeper, 0);
  ASSERT_GT(flight.daemon, 0);  // before any request waits on it
  flight.start();
  // Every worker thread holds a request: as many as the daemon runs (a sanitizer's own
  // threads come on top of those).
  ASSERT_TRUE(eventually([&] { return requests_in_flight(keeper) == fs::session_workers(); }))
      << requests_in_flight(keeper) << " in flight, " << threads_of(flight.daemon) << " threads";
}

// Every held create ended well and is there once, with the usage to match; with
// --charge writer (`writer`), each had its backing id, and none is left.
void expect_every_create_whole(InFlight& flight, const std::string& host, bool writer) {
  for (auto& m : flight.makers) {
    int status = m.wait();
    EXPECT_EQ(status, 0) << std::strerror(status);
  }
  Tree got = walk(host);
  EXPECT_EQ(got, flight.want()) << got.describe();
  expect_usage(host, flight.want());
  if (writer) expect_no_backing_id_left();
}

TEST_P(KilledUnderLoad, ADaemonKilledWithARequestInFlightOnEveryWorkerLosesNone) {
  ScopedEnv hold({{"HOSTCHANFS_TEST_HOLD_CREATES", "1"}});
  std::string host = world_->path("chan");
  ASSERT_NO_FATAL_FAILURE(mount_channel(host, "16M"));
  InFlight flight{host};
  ASSERT_NO_FATAL_FAILURE(hold_every_worker(flight));
  ASSERT_NO_FATAL_FAILURE(kill_daemon_and_wait(host));
  // The resumed daemon answers the resent creates from the store's record: a create that
  // the dead daemon had done does not get EEXIST.
  expect_every_create_whole(flight, host, writer_charged());
  EXPECT_EQ(hostchanfs({"umount", host}).status, 0);
}

INSTANTIATE_TEST_SUITE_P(Restart, KilledUnderLoad, ::testing::Values("channel", "writer"));

// --charge writer: an inode that is open when its daemon dies is open through the dead
// daemon's backing id, and the kernel refuses an open of it that carries another one
// (EIO). The next daemon knows the id (the session record), gives it to new opens and
// closes it at the last release, whichever daemon opened the handles.
TEST_F(RestartTest, AFileOpenWhileItsWriterChargedDaemonDiesOpensAgainAndLeaksNoBackingId) {
  std::string host = world_->path("chan");
  ASSERT_EQ(hostchanfs({"mount", "--charge", "writer", host + ":/data::16M"}).status, 0);
  std::string path = host + "/f";
  UniqueFd held(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  ASSERT_TRUE(held) << std::strerror(errno);
  std::string want = "before the kills.";
  ASSERT_EQ(::pwrite(held.get(), want.data(), want.size(), 0), static_cast<ssize_t>(want.size()));
  // Another process writes fixed records through a descriptor it opened before the
  // kills, without pause, round a ring of kSlots records (bounded, however slow the
  // restarts); it reports how many it wrote (each write whole, or it fails).
  constexpr long kSlots = 16384;  // 1 MiB
  int stop[2];
  ASSERT_EQ(::pipe2(stop, O_CLOEXEC), 0);
  UniqueFd stop_read(stop[0]), stop_write(stop[1]);
  UniqueFd count(::memfd_create("count", MFD_CLOEXEC));
  auto record = [](long n) {  // 64 bytes
    std::string r = "record " + std::to_string(n) + " ";
    return r + std::string(63 - r.size(), static_cast<char>('a' + n % 26)) + "\n";
  };
  UniqueFd writing(::open((host + "/g").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  ASSERT_TRUE(writing);
  ChildProcess w = ChildProcess::fork([&] {
    long n = 0;
    for (;; ++n) {
      pollfd p{stop_read.get(), POLLIN, 0};
      if (::poll(&p, 1, 0) > 0) break;
      std::string r = record(n);
      if (::pwrite(writing.get(), r.data(), r.size(), (n % kSlots) * 64) != static_cast<ssize_t>(r.size())) {
        std::fprintf(stderr, "writer of g: record %ld: %s\n", n, std::strerror(errno));
        return 1;
      }
    }
    return ::pwrite(count.get(), &n, sizeof n, 0) == sizeof n ? 0 : 1;
  });
  writing.reset();

  std::vector<UniqueFd> opened;
  for (int kill = 0; kill < 4; ++kill) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_NO_FATAL_FAILURE(kill_daemon_and_wait(host)) << "kill " << kill;
    // An open of the held inode after the kill: the dead daemon's backing id, or EIO.
    UniqueFd again(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(again) << "open after kill " << kill << ": " << std::strerror(errno);
    std::string tail = " after kill " + std::to_string(kill) + ".";
    // Through the descriptor from before the kills and through the new one, in turn.
    int through = kill % 2 == 0 ? held.get() : again.get();
    ASSERT_EQ(::pwrite(through, tail.data(), tail.size(), static_cast<off_t>(want.size())),
              static_cast<ssize_t>(tail.size()));
    want += tail;
    for (int fd : {held.get(), again.get()}) {
      std::string got(want.size() + 10, '\0');
      ssize_t n = ::pread(fd, got.data(), got.size(), 0);
      ASSERT_GE(n, 0) << std::strerror(errno);
      got.resize(static_cast<std::size_t>(n));
      EXPECT_EQ(got, want) << "after kill " << kill;
    }
    // The file the other process writes too, opened anew while its descriptor is open.
    UniqueFd g(::open((host + "/g").c_str(), O_RDONLY | O_CLOEXEC));
    EXPECT_TRUE(g) << "open g after kill " << kill << ": " << std::strerror(errno);
    opened.push_back(std::move(again));
  }
  ASSERT_EQ(::write(stop_write.get(), "x", 1), 1);
  ASSERT_EQ(w.wait(), 0) << "the writer of g saw an error (its stderr says which)";
  long records = 0;
  ASSERT_EQ(::pread(count.get(), &records, sizeof records, 0), static_cast<ssize_t>(sizeof records));
  ASSERT_GT(records, 0);
  std::string all;  // each slot holds the last record written to it
  for (long k = 0; k < std::min(records, kSlots); ++k) all += record(k + kSlots * ((records - 1 - k) / kSlots));
  EXPECT_EQ(fnv1a(read_file(host + "/g")), fnv1a(all)) << records << " records";
  EXPECT_EQ(read_file(path), want);
  opened.clear();
  held.reset();
  EXPECT_EQ(read_file(path), want);
  ASSERT_NO_FATAL_FAILURE(expect_no_backing_id_left());
  EXPECT_EQ(hostchanfs({"umount", host}).status, 0);
}

// The keeper dies (and takes its daemon along) while a request is in flight on every
// worker: the workers read through clones of /dev/fuse (fs/session_clones.hpp) that the
// controller holds too, so the requests stay in the kernel while the controller starts the
// next keeper, and its daemon has them resent. Were the clones the daemon's or the
// keeper's alone, every held create would end with ECONNABORTED.
TEST_P(KilledUnderLoad, AKeeperKilledWithARequestInFlightOnEveryWorkerLosesNone) {
  ScopedEnv hold({{"HOSTCHANFS_TEST_HOLD_CREATES", "1"}});
  std::string host = world_->path("chan");
  ASSERT_NO_FATAL_FAILURE(mount_channel(host, "16M"));
  json before = channel_of();
  pid_t daemon = before.value("daemon_pid", 0);
  EXPECT_TRUE(has_clones(daemon));
  InFlight flight{host};
  ASSERT_NO_FATAL_FAILURE(hold_every_worker(flight));
  pid_t keeper = before.value("keeper_pid", 0);
  ASSERT_TRUE(kill_process_of(keeper, "keep", host));
  ASSERT_TRUE(eventually([&] {
    json now = channel_of();
    return now.value("keeper_pid", 0) != keeper && now.value("restarts", 0ULL) >= 1 &&
           now.value("daemon_pid", 0) != daemon;
  })) << world_->controller_log();
  expect_every_create_whole(flight, host, writer_charged());
  EXPECT_EQ(hostchanfs({"umount", host}).status, 0);
}

TEST_F(RestartTest, WithoutResendTheDeadDaemonsRequestsFailInsteadOfHanging) {
  // As on a kernel before 6.9, which refuses FUSE_NOTIFY_RESEND with EINVAL.
  ScopedEnv env({{"HOSTCHANFS_TEST_HOLD_CREATES", "1"}, {"HOSTCHANFS_TEST_NO_RESEND", "1"}});
  std::string host = world_->path("chan");
  ASSERT_EQ(hostchanfs({"mount", host + ":/data::16M"}).status, 0);
  InFlight flight{host};
  ASSERT_NO_FATAL_FAILURE(hold_every_worker(flight));
  ASSERT_NO_FATAL_FAILURE(kill_daemon_and_wait(host));
  int failed = 0;
  for (auto& m : flight.makers) {
    int status = m.wait();  // every one ends: none hangs
    EXPECT_TRUE(status == 0 || status == EIO) << std::strerror(status);
    failed += status == EIO;
  }
  EXPECT_GT(failed, 0) << "the held requests were not failed";
  EXPECT_NE(world_->controller_log().find("refused FUSE_NOTIFY_RESEND"), std::string::npos);
  // New requests are served.
  { std::ofstream(host + "/after") << "served"; }
  EXPECT_EQ(read_file(host + "/after"), "served");
  EXPECT_EQ(hostchanfs({"umount", host}).status, 0);
}

// The first daemon dies inside INIT: after keeping the kernel's request ("read": the next
// daemon's replayed INIT is answered to the kernel), or after keeping its reply too
// ("reply": the kernel resends INIT, which gets the kept reply). Either way the channel
// serves.
class DeathInInit : public RestartTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(DeathInInit, TheNextDaemonFinishesIt) {
  ScopedEnv die({{"HOSTCHANFS_TEST_DIE_IN_INIT", GetParam()}});
  std::string host = world_->path("chan");
  ASSERT_EQ(hostchanfs({"mount", host + ":/data::8M"}).status, 0);
  { std::ofstream(host + "/f") << "after INIT"; }
  EXPECT_EQ(read_file(host + "/f"), "after INIT");
  json ch = channel_of();
  EXPECT_EQ(ch.value("restarts", 0ULL), 1u) << world_->controller_log();
  EXPECT_EQ(ch.value("state", ""), "running");
  const char* how = std::string_view(GetParam()) == "read" ? "the kept INIT had no reply: answered it now"
                                                           : "answered the resent INIT with the kept reply";
  EXPECT_NE(world_->controller_log().find(how), std::string::npos) << world_->controller_log();
  EXPECT_EQ(hostchanfs({"umount", host}).status, 0);
}

INSTANTIATE_TEST_SUITE_P(RestartTest, DeathInInit, ::testing::Values("read", "reply"));

// --charge writer: the first daemon dies right after the kernel gave it a backing id and
// before it recorded the id ("open"), or after it marked an id closing and before it
// closed it ("close"). The next daemon closes that id, serves the resent request, and no
// id is left once the file is closed.
class DeathInBackingId : public RestartTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(DeathInBackingId, TheNextDaemonClosesTheId) {
  ScopedEnv die({{"HOSTCHANFS_TEST_DIE_IN_BACKING", GetParam()}});
  std::string host = world_->path("chan");
  ASSERT_EQ(hostchanfs({"mount", "--charge", "writer", host + ":/data::8M"}).status, 0);
  { std::ofstream(host + "/f") << "through a backing file"; }
  EXPECT_EQ(read_file(host + "/f"), "through a backing file");
  ASSERT_TRUE(eventually([&] { return channel_of().value("restarts", 0ULL) == 1; })) << world_->controller_log();
  const char* how = std::string_view(GetParam()) == "open" ? "which the dead daemon got and did not record"
                                                           : "which the dead daemon was closing";
  ASSERT_NO_FATAL_FAILURE(expect_no_backing_id_left());
  EXPECT_NE(world_->controller_log().find(how), std::string::npos) << world_->controller_log();
  EXPECT_EQ(read_file(host + "/f"), "through a backing file");
  EXPECT_EQ(hostchanfs({"umount", host}).status, 0);
}

INSTANTIATE_TEST_SUITE_P(RestartTest, DeathInBackingId, ::testing::Values("open", "close"));

TEST_F(RestartTest, TheChannelComesBackAfterTheControllerThenTheDaemonThenTheKeeperAreKilled) {
  std::string host = world_->path("chan");
  ASSERT_EQ(hostchanfs({"mount", host + ":/data::8M"}).status, 0);
  { std::ofstream(host + "/before") << std::string(10000, 'b'); }
  json first = channel_of();
  pid_t daemon = first.value("daemon_pid", 0);

  // The keeper restarts the daemon whether a controller runs or not.
  auto first_controller = world_->controller_pid();
  ASSERT_TRUE(first_controller);
  world_->kill_controller();
  ASSERT_TRUE(kill_process_of(daemon, "serve", host));
  { std::ofstream(host + "/after-daemon") << "d"; }
  EXPECT_EQ(read_file(host + "/before"), std::string(10000, 'b'));
  EXPECT_EQ(read_file(host + "/after-daemon"), "d");

  // The keeper brings up the next controller by itself (no command has run since the
  // kill), which adopts it; the keeper's own death is then repaired by that controller.
  ASSERT_TRUE(eventually([&] {
    auto pid = world_->controller_pid();
    return pid && *pid != *first_controller && ::kill(*pid, 0) == 0;
  }));
  json adopted = channel_of();
  EXPECT_EQ(adopted.value("state", ""), "running") << world_->controller_log();
  EXPECT_EQ(adopted.value("restarts", 0ULL), 1u);
  EXPECT_EQ(adopted.value("keeper_pid", 0), first.value("keeper_pid", 0));
  pid_t keeper = adopted.value("keeper_pid", 0);
  ASSERT_TRUE(kill_process_of(keeper, "keep", host));
  ASSERT_TRUE(eventually([&] {
    json now = channel_of();
    return now.value("keeper_pid", 0) != keeper && now.value("restarts", 0ULL) == 2;
  })) << world_->controller_log();
  { std::ofstream(host + "/after-keeper") << "k"; }
  // The adopting controller took the clones of /dev/fuse back too, and gave them on.
  pid_t last_daemon = channel_of().value("daemon_pid", 0);
  EXPECT_TRUE(has_clones(last_daemon)) << world_->controller_log();
  Tree want;
  want.files["before"] = {fnv1a(std::string(10000, 'b')), 10000};
  want.files["after-daemon"] = {fnv1a("d"), 1};
  want.files["after-keeper"] = {fnv1a("k"), 1};
  EXPECT_EQ(walk(host), want);
  expect_usage(host, want);
  EXPECT_EQ(channel_of().value("state", ""), "running");
  EXPECT_EQ(hostchanfs({"umount", host}).status, 0);
}

// The one death the failure model gives up (README): the keeper and the controller at
// once, so that nothing holds the connection any more. Both are stopped first, so that
// neither sees the other die and brings up its successor. The kernel then aborts the
// connection: the calls in flight on every worker end with ECONNABORTED and later ones
// fail with ENOTCONN, none hangs, and `umount` cleans up.
TEST_F(RestartTest, TheKeeperAndTheControllerKilledAtOnceEndTheChannelWithENOTCONNNotAHang) {
  ScopedEnv hold({{"HOSTCHANFS_TEST_HOLD_CREATES", "1"}});
  std::string host = world_->path("chan");
  ASSERT_EQ(hostchanfs({"mount", host + ":/data::8M"}).status, 0);
  InFlight flight{host};
  ASSERT_NO_FATAL_FAILURE(hold_every_worker(flight));
  json first = channel_of();
  pid_t keeper = first.value("keeper_pid", 0), daemon = first.value("daemon_pid", 0);
  auto keeper_fd = open_pidfd(keeper), daemon_fd = open_pidfd(daemon);
  ASSERT_TRUE(keeper_fd && daemon_fd) << first.dump();
  auto controller = world_->controller_pid();
  ASSERT_TRUE(controller);
  auto controller_fd = open_pidfd(*controller);
  ASSERT_TRUE(controller_fd);
  ASSERT_TRUE(signal_pidfd(controller_fd.value().get(), SIGSTOP));
  ASSERT_TRUE(kill_process_of(keeper, "keep", host, SIGSTOP));
  ASSERT_TRUE(kill_process_of(keeper, "keep", host));
  world_->kill_controller();
  // The daemon dies with its keeper (PR_SET_PDEATHSIG).
  ASSERT_TRUE(wait_pidfd(keeper_fd.value().get(), std::chrono::seconds(60)));
  ASSERT_TRUE(wait_pidfd(daemon_fd.value().get(), std::chrono::seconds(60)));
  for (auto& m : flight.makers) {
    auto status = m.wait_for(std::chrono::seconds(60));
    ASSERT_TRUE(status) << "a create in flight hangs after the connection is gone";
    EXPECT_EQ(*status, ECONNABORTED) << std::strerror(*status);
  }

  // Calls that need the daemon, each in a child, so that a hang fails the test instead of
  // holding it (a stat of a name the kernel has cached needs no daemon, and succeeds).
  auto errno_of = [](const std::function<int()>& call) {
    auto child = ChildProcess::fork([call] { return call() < 0 ? errno : 0; });
    auto status = child.wait_for(std::chrono::seconds(60));
    return status ? *status : -1;
  };
  EXPECT_EQ(errno_of([&] {
              struct stat st {};
              return ::stat((host + "/never-made").c_str(), &st);
            }),
            ENOTCONN);
  EXPECT_EQ(errno_of([&] { return ::open((host + "/d0/new").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600); }),
            ENOTCONN);

  // The next command brings up a controller, which finds the channel gone and says so.
  json after = channel_of();
  EXPECT_EQ(after.value("state", ""), "failed") << after.dump() << world_->controller_log();
  auto r = hostchanfs({"umount", host});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(is_fuse_mount(host));
  EXPECT_EQ(hostchanfs({"ls", "--json"}).out.find(host), std::string::npos);
}

}  // namespace
}  // namespace hostchanfs::testing
