// ChildProcess: a forked child that dies with its parent (PR_SET_PDEATHSIG) and is killed
// and reaped when the owner goes out of scope, so a failing test leaves no process behind.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace hostchanfs::testing {

class ChildProcess {
 public:
  struct Redirect {
    int from;  // a descriptor of the parent
    int to;    // its number in the child (kept open across exec)
  };

  ChildProcess() = default;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ChildProcess(ChildProcess&& o) noexcept
      : pid_(std::exchange(o.pid_, -1)), status_(std::exchange(o.status_, std::nullopt)) {}
  ChildProcess& operator=(ChildProcess&& o) noexcept {
    if (this != &o) {
      kill_and_reap();
      pid_ = std::exchange(o.pid_, -1);
      status_ = std::exchange(o.status_, std::nullopt);
    }
    return *this;
  }
  ~ChildProcess() { kill_and_reap(); }

  // Run `body` in a forked child; its return value is the exit status. Use for steps that
  // need another uid (setresuid) or another process. The child never returns into the
  // test framework: it _exit()s.
  static ChildProcess fork(const std::function<int()>& body) {
    ChildProcess c;
    pid_t parent = ::getpid();
    c.pid_ = ::fork();
    if (c.pid_ == 0) {
      die_with(parent);
      int rc = 127;
      try {
        rc = body();
      } catch (...) {
        rc = 126;
      }
      ::_exit(rc);
    }
    return c;
  }

  // Execute argv[0] (a path) with the given descriptors placed; stdin is /dev/null unless
  // redirected, stdout/stderr are inherited unless redirected.
  static ChildProcess spawn(const std::vector<std::string>& argv,
                            const std::vector<Redirect>& redirects = {}) {
    ChildProcess c;
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t parent = ::getpid();
    c.pid_ = ::fork();
    if (c.pid_ == 0) {
      die_with(parent);
      int null = ::open("/dev/null", O_RDONLY);
      if (null >= 0) ::dup2(null, 0);
      // Move sources out of the way first, so that one redirect cannot clobber another.
      std::vector<int> moved;
      for (const auto& r : redirects) moved.push_back(::fcntl(r.from, F_DUPFD_CLOEXEC, 100));
      for (std::size_t i = 0; i < redirects.size(); ++i) ::dup2(moved[i], redirects[i].to);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    return c;
  }

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0 && !status_; }

  // Wait for the end; the exit status, or 128 + signal number.
  int wait() {
    if (status_) return *status_;
    if (pid_ <= 0) return -1;
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return *status_;
  }

  // Like wait(), but gives up (nullopt) after `timeout`.
  std::optional<int> wait_for(std::chrono::milliseconds timeout) {
    if (status_) return status_;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      int st = 0;
      pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        return status_;
      }
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  void signal(int sig) {
    if (running()) ::kill(pid_, sig);
  }

 private:
  static void die_with(pid_t parent) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(125);  // the parent died before prctl took effect
  }

  void kill_and_reap() {
    if (running()) {
      ::kill(pid_, SIGKILL);
      wait();
    }
    pid_ = -1;
  }

  pid_t pid_ = -1;
  std::optional<int> status_;
};

}  // namespace hostchanfs::testing
