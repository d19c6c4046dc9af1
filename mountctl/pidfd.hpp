// pidfd wrappers. glibc 2.36's <sys/pidfd.h> lacks extern "C" (its symbols do not link
// from C++), so these call the kernel directly.
#pragma once

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace hostchanfs::mountctl {

inline int open_pidfd(pid_t pid) noexcept {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

inline int signal_pidfd(int pidfd, int sig) noexcept {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

// A copy of descriptor `target_fd` of the process behind `pidfd`.
inline int take_fd(int pidfd, int target_fd) noexcept {
  return static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, target_fd, 0));
}

}  // namespace hostchanfs::mountctl
