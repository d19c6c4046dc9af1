// Child processes: the one way every part starts one.
//
//   Exec          a program and how its child is set up between fork and exec, prepared
//                 before the fork so that the child only makes system calls (the parent
//                 may have other threads: a TSan runtime's, a test's)
//   Child         the owner of a child we forked: killed (SIGKILL) and reaped when it goes,
//                 unless it was waited for or released; waits and signals go through its
//                 pidfd, so they can never reach a process that reused the pid
//   run_in_child  fork, let the child report through a pipe, wait for it
//   spawn_detached  start a program that is not our child and outlives us
//
// Every child starts with an empty signal mask (unblock_all_signals): the controller and
// `run` block the signals they read synchronously, and a child must not inherit that.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "sys/result.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs {

// Clears the calling thread's signal mask. Async-signal-safe: for a child after fork.
void unblock_all_signals() noexcept;

// A wait status as a shell reports it: the exit code, or 128 + the signal that killed it.
int exit_status_of(int wait_status) noexcept;

class Exec {
 public:
  // argv[0] is the file executed (a path), unless program() names another one or
  // search_path() asks for a PATH search.
  explicit Exec(std::vector<std::string> argv);
  // Holds pointers into itself for the child: neither copied nor moved.
  Exec(const Exec&) = delete;
  Exec& operator=(const Exec&) = delete;

  Exec& program(std::string path);  // execute this file; argv[0] is only the name it sees
  Exec& search_path();              // execvp: argv[0] is looked up in PATH
  Exec& env(const std::vector<std::string>& extra);  // NAME=value added to our environment
  // Descriptor `from` (ours) becomes `to` in the child, open across exec. Every other
  // descriptor keeps its close-on-exec flag; stdin is /dev/null unless 0 is placed.
  Exec& place_fd(int from, int to);
  Exec& keep_fd(int fd) { return place_fd(fd, fd); }
  Exec& cwd(std::string dir);  // the child's working directory (exit 127 if it cannot)
  // PR_SET_PDEATHSIG: the child gets `sig` when its parent dies (exits 125 at once if the
  // parent is already gone).
  Exec& die_with_parent(int sig);

  // fork, then set the child up and exec in it. The child's pid (-1: fork failed).
  pid_t fork_exec() const noexcept;

 private:
  [[noreturn]] void exec_in_child(pid_t parent) const noexcept;

  std::vector<std::string> argv_, env_;
  std::string program_, cwd_;
  bool search_path_ = false;
  int death_signal_ = 0;
  struct Placement {
    int from, to;
  };
  std::vector<Placement> fds_;
  // What the child uses, prepared before the fork: it allocates nothing.
  std::vector<char*> argv_ptrs_, env_ptrs_;
  mutable std::vector<int> moved_;  // the child's scratch: one slot per placement
};

class Child {
 public:
  Child() noexcept = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  Child(Child&& o) noexcept;
  Child& operator=(Child&& o) noexcept;
  ~Child() { kill_and_reap(); }

  // fork; the child runs `body` and _exits with what it returns (126 when it throws). With
  // `death_signal`, as Exec::die_with_parent.
  static Result<Child> fork(const std::function<int()>& body, int death_signal = 0);
  // fork + exec.
  static Result<Child> spawn(const Exec& exec);

  pid_t pid() const noexcept { return pid_; }
  int pidfd() const noexcept { return pidfd_.get(); }
  bool running() const noexcept { return pid_ > 0 && !status_; }

  // Waits for the end and reaps it: its exit status (exit_status_of). -1 without a child.
  int wait() noexcept;
  // The same, or nullopt when it has not ended within `timeout`.
  std::optional<int> wait_for(std::chrono::milliseconds timeout) noexcept;
  void signal(int sig) noexcept;
  // SIGTERM, SIGKILL after `grace`, and wait: true when SIGTERM was enough.
  bool terminate(std::chrono::milliseconds grace) noexcept;
  void kill_and_reap() noexcept;

  // Stop owning it: it is not killed when this object goes. Its pid and pidfd.
  struct Released {
    pid_t pid;
    UniqueFd pidfd;
  };
  Released release() noexcept;

 private:
  static Result<Child> adopt(pid_t pid);
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  std::optional<int> status_;
};

// Fork; the child runs body(report_fd) and _exits with its return value. The parent reads
// everything the child (or a child of it, until it execs) writes to report_fd, then reaps
// it. For a step that must run in another process (setns, a double fork) and say why it
// failed.
struct ChildReport {
  int status = 0;      // exit_status_of the child
  std::string report;  // what it wrote
};
Result<ChildReport> run_in_child(const std::function<int(int report_fd)>& body);

// Start `exec` detached: a child starts a new session and forks the program, then exits,
// so the program is not our child, has no controlling terminal and outlives us (init or a
// subreaper adopts it). Its pid.
Result<pid_t> spawn_detached(const Exec& exec);

}  // namespace hostchanfs
