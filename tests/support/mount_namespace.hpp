// PrivateMountNamespace: the calling thread (and every child it starts afterwards) gets
// its own mount namespace with / made rprivate, so mounts made in a test are invisible
// to the host and vanish with the namespace, even if the test dies halfway. The original
// namespace is re-entered on destruction.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace hostchanfs::testing {

class PrivateMountNamespace {
 public:
  PrivateMountNamespace() {
    original_ = ::open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
    if (original_ < 0) throw std::runtime_error(std::string("open /proc/self/ns/mnt: ") + std::strerror(errno));
    if (::unshare(CLONE_NEWNS) < 0) fail("unshare(CLONE_NEWNS)");
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) fail("make / rprivate");
  }
  ~PrivateMountNamespace() {
    if (original_ >= 0) {
      ::setns(original_, CLONE_NEWNS);
      ::close(original_);
    }
  }
  PrivateMountNamespace(const PrivateMountNamespace&) = delete;
  PrivateMountNamespace& operator=(const PrivateMountNamespace&) = delete;

 private:
  [[noreturn]] void fail(const char* what) {
    int err = errno;
    ::close(original_);
    original_ = -1;
    throw std::runtime_error(std::string(what) + ": " + std::strerror(err));
  }
  int original_ = -1;
};

}  // namespace hostchanfs::testing
