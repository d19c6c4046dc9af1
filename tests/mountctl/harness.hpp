// A private world for one controller test: its own mount namespace, work directory, run
// dir (HOSTCHANFS_RUN_DIR) and controller (ControllerWorld), and the fixture that gives
// every controller and run test one (ControllerFixture; CheckedControllerTest also checks
// that the test left nothing). On destruction — also when the test failed halfway — the
// controller is stopped by pid (SIGTERM: it removes every channel; SIGKILL if it does not
// end), every process still naming the work directory is killed by pid, leftover mounts
// are detached and the work directory removed. RawClient speaks to the controller's
// socket byte by byte, for tests that speak the protocol badly on purpose.
#pragma once

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "sys/mount.hpp"
#include "sys/pidfd.hpp"
#include "sys/read_file.hpp"
#include "sys/unix_socket.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/fuse_required.hpp"
#include "tests/support/mount_namespace.hpp"
#include "tests/support/mounts.hpp"
#include "tests/support/scoped_mounts.hpp"

namespace hostchanfs::testing {

struct CliResult {
  int status = -1;
  std::string out, err;
};

// pread, never lseek+read: the child's stdout shares this file's offset, and a write it
// makes between our seek and our read would land at 0, over what it wrote first.
inline std::string read_all(int fd) {
  std::string s;
  char buf[8192];
  ssize_t n;
  while ((n = ::pread(fd, buf, sizeof buf, static_cast<off_t>(s.size()))) > 0)
    s.append(buf, static_cast<std::size_t>(n));
  return s;
}

// Polls `done` until it holds; the bound only turns a hang into a failure.
inline bool eventually(const std::function<bool()>& done,
                       std::chrono::seconds bound = std::chrono::seconds(60)) {
  auto deadline = std::chrono::steady_clock::now() + bound;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

// `hostchanfs ARGS...` started in the background, stdout and stderr into memfds.
class Cli {
 public:
  explicit Cli(const std::vector<std::string>& args)
      : out_(::memfd_create("out", MFD_CLOEXEC)), err_(::memfd_create("err", MFD_CLOEXEC)) {
    std::vector<std::string> argv = {HOSTCHANFS_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    proc_ = ChildProcess::spawn(argv, {{out_, 1}, {err_, 2}});
  }
  ~Cli() {
    proc_ = ChildProcess();  // kills and reaps it if still running
    ::close(out_);
    ::close(err_);
  }
  Cli(const Cli&) = delete;
  Cli& operator=(const Cli&) = delete;

  pid_t pid() const { return proc_.pid(); }
  void signal(int sig) { proc_.signal(sig); }
  CliResult wait() {
    CliResult r;
    r.status = proc_.wait();
    r.out = read_all(out_);
    r.err = read_all(err_);
    return r;
  }
  std::string err_so_far() const { return read_all(err_); }
  std::string out_so_far() const { return read_all(out_); }

  // Polls `done` until it holds, like testing::eventually(), but gives up as soon as the
  // command has ended without it: a run that fails at once fails its test at once.
  bool eventually(const std::function<bool()>& done,
                  std::chrono::seconds bound = std::chrono::seconds(60)) {
    bool ended = false;
    return testing::eventually(
               [&] { return done() || (ended = proc_.wait_for(std::chrono::milliseconds(0)).has_value()); },
               bound) &&
           (!ended || done());
  }

 private:
  int out_, err_;
  ChildProcess proc_;
};

inline CliResult hostchanfs(const std::vector<std::string>& args) { return Cli(args).wait(); }

inline bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

inline bool is_fuse_mount(const std::string& path) {
  constexpr long kFuseSuperMagic = 0x65735546;
  struct statfs sf {};
  return ::statfs(path.c_str(), &sf) == 0 && sf.f_type == kFuseSuperMagic;
}

// Pids of processes whose command line mentions `text` (our daemons name their host path).
inline std::vector<pid_t> processes_naming(const std::string& text) {
  std::vector<pid_t> found;
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir("/proc"), ::closedir);
  while (dirent* e = d ? ::readdir(d.get()) : nullptr) {
    pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0 || pid == ::getpid()) continue;
    std::string cmd = read_small_file(std::string("/proc/") + e->d_name + "/cmdline");
    if (cmd.find(text) != std::string::npos) found.push_back(pid);
  }
  return found;
}

class ControllerWorld {
 public:
  ControllerWorld() : work_("mountctl") {
    run_dir_ = work_.path() + "/run";
    ::setenv("HOSTCHANFS_RUN_DIR", run_dir_.c_str(), 1);
    // ControllerClient::connect() in this process starts hostchanfs, not the test.
    ::setenv("HOSTCHANFS_SELF", HOSTCHANFS_BIN, 1);
  }
  ~ControllerWorld() {
    stop_controller();
    for (pid_t pid : processes_naming(work_.path())) ::kill(pid, SIGKILL);
    auto left = mounts_under(work_.path());
    for (auto it = left.rbegin(); it != left.rend(); ++it) (void)detach_mount(*it);
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(work_.path(), ec)) {
      std::filesystem::remove_all(entry.path(), ec);
    }
    ::unsetenv("HOSTCHANFS_RUN_DIR");
  }
  ControllerWorld(const ControllerWorld&) = delete;
  ControllerWorld& operator=(const ControllerWorld&) = delete;

  const std::string& work() const { return work_.path(); }
  const std::string& run_dir() const { return run_dir_; }
  std::string path(const std::string& rel) const { return work_.path() + "/" + rel; }

  std::optional<pid_t> controller_pid() const {
    std::ifstream in(run_dir_ + "/controller.pid");
    pid_t pid = 0;
    if (in >> pid && pid > 0) return pid;
    return std::nullopt;
  }

  // SIGTERM (the controller removes every channel), SIGKILL if it does not end. Returns
  // true if it ended on SIGTERM.
  bool stop_controller() {
    auto pid = controller_pid();
    if (!pid) return true;
    auto pidfd = open_pidfd(*pid);
    if (!pidfd) return true;
    return terminate_pidfd(pidfd.value().get(), std::chrono::seconds(60));
  }

  // SIGKILL, and wait until it has ended (its pidfd: a zombie not yet reaped has ended).
  void kill_controller() {
    auto pid = controller_pid();
    if (!pid) throw std::runtime_error("no controller to kill");
    auto pidfd = open_pidfd(*pid);
    if (!pidfd) return;
    (void)signal_pidfd(pidfd.value().get(), SIGKILL);
    if (!wait_pidfd(pidfd.value().get(), std::chrono::seconds(60))) throw std::runtime_error("the controller outlived SIGKILL");
  }

  std::string controller_log() const { return read_small_file(run_dir_ + "/controller.log"); }

 private:
  PrivateMountNamespace ns_;
  TempDir work_;
  std::string run_dir_;
};

// The fixture of a test that talks to a controller: FUSE required, and a ControllerWorld
// of its own. The tests' TearDown checks what must be gone.
class ControllerFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    HOSTCHANFS_REQUIRE_FUSE();
    world_.emplace();
  }
  // `hostchanfs ls --json`, which must succeed.
  nlohmann::json ls() {
    auto r = hostchanfs({"ls", "--json"});
    EXPECT_EQ(r.status, 0) << r.err;
    return nlohmann::json::parse(r.out);
  }
  std::optional<ControllerWorld> world_;
};

// A ControllerFixture whose TearDown checks what must be gone: the controller ends on
// SIGTERM, and no mount and no process naming the work directory is left.
class CheckedControllerTest : public ControllerFixture {
 protected:
  void TearDown() override {
    if (!world_) return;
    std::string work = world_->work();
    EXPECT_TRUE(world_->stop_controller()) << "the controller ignored SIGTERM";
    EXPECT_EQ(mounts_under(work), std::vector<std::string>{}) << world_->controller_log();
    EXPECT_EQ(processes_naming(work), std::vector<pid_t>{});
    world_.reset();
  }
};

// One connection to the controller's socket at `run_dir`, bytes in and lines out.
class RawClient {
 public:
  explicit RawClient(const std::string& run_dir) {
    auto address = unix_address(run_dir + "/controller.sock");
    auto fd = address ? connect_unix(address.value()) : Result<UniqueFd>(address.error());
    if (!fd) throw std::runtime_error("connect to the controller of " + run_dir + ": " + errno_text(fd.error()));
    fd_ = std::move(fd).value();
  }
  int fd() const { return fd_.get(); }
  // False once the controller has closed the connection (EPIPE, ECONNRESET).
  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  // Sends without ever blocking for longer than `bound` (for a client that must not be
  // stalled by a controller that stopped reading it).
  enum class Sent { kAll, kStalled, kClosed };
  Sent send_within(std::string_view bytes, std::chrono::seconds bound) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        bytes.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno != EAGAIN) return Sent::kClosed;
      pollfd p{fd_.get(), POLLOUT, 0};
      if (::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(bound).count())) <= 0) return Sent::kStalled;
    }
    return Sent::kAll;
  }
  // The next answer line, or nullopt when none comes within `bound` (which only turns a
  // hang into a failure) or the controller closed the connection.
  std::optional<std::string> read_line(std::chrono::seconds bound = std::chrono::seconds(30)) {
    auto deadline = std::chrono::steady_clock::now() + bound;
    for (;;) {
      if (auto nl = pending_.find('\n'); nl != std::string::npos) {
        std::string line = pending_.substr(0, nl);
        pending_.erase(0, nl + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{fd_.get(), POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
      char buf[65536];
      ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
      if (n <= 0) return std::nullopt;
      pending_.append(buf, static_cast<std::size_t>(n));
    }
  }

 private:
  UniqueFd fd_;
  std::string pending_;
};

}  // namespace hostchanfs::testing
