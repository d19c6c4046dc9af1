// pidfds: a process named by a descriptor, so that a signal or a wait can never reach
// another process that reused the pid. glibc 2.36's <sys/pidfd.h> lacks extern "C" (its
// symbols do not link from C++), so these call the kernel directly.
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "sys/result.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs {

// A pidfd of `pid` (ESRCH when there is no such process). On our own child that has not
// been reaped it cannot name another process.
inline Result<UniqueFd> open_pidfd(pid_t pid) noexcept {
  UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!fd) return last_errc();
  return fd;
}

inline Result<void> signal_pidfd(int pidfd, int sig) noexcept {
  if (::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) < 0) return last_errc();
  return success();
}

// A copy of descriptor `target_fd` of the process behind `pidfd` (pidfd_getfd).
inline Result<UniqueFd> take_fd(int pidfd, int target_fd) noexcept {
  UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, target_fd, 0)));
  if (!fd) return last_errc();
  return fd;
}

// Waits until the process behind `pidfd` ends, at most `timeout` (negative: no bound).
// True once it has ended (a zombie has ended). Does not reap it.
inline bool wait_pidfd(int pidfd, std::chrono::milliseconds timeout) noexcept {
  pollfd p{pidfd, POLLIN, 0};
  int rc;
  while ((rc = ::poll(&p, 1, static_cast<int>(timeout.count()))) < 0 && errno == EINTR) {
  }
  return rc > 0;
}

// SIGTERM, then SIGKILL when the process has not ended within `grace`; returns once it has
// ended, true when SIGTERM was enough. The caller reaps it if it is its child.
inline bool terminate_pidfd(int pidfd, std::chrono::milliseconds grace) noexcept {
  (void)signal_pidfd(pidfd, SIGTERM);
  if (wait_pidfd(pidfd, grace)) return true;
  (void)signal_pidfd(pidfd, SIGKILL);
  wait_pidfd(pidfd, std::chrono::milliseconds(-1));
  return false;
}

}  // namespace hostchanfs
