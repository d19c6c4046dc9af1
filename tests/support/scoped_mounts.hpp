// Mounts for tests, each removed (and its directory deleted, temp_dir.hpp) when it goes
// out of scope:
//   ScopedTmpfs       a kernel tmpfs, the reference behaviour
//   ScopedHostchanfs  a real `HOSTCHANFS_BIN serve` daemon, started and waited for
// and what the kernel holds for a mount: read_ahead_kb().
// Use them inside a PrivateMountNamespace (mount_namespace.hpp) so that even a crashed
// test leaves no mount behind; the daemon also dies with the test (PDEATHSIG).
#pragma once

#include <poll.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "sys/errno_text.hpp"
#include "sys/mount.hpp"
#include "sys/read_file.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/temp_dir.hpp"

namespace hostchanfs::testing {

// A kernel tmpfs with mode=1777 and the given size (and inode limit, if not 0).
class ScopedTmpfs {
 public:
  explicit ScopedTmpfs(std::uint64_t size_bytes, std::uint64_t inodes = 0) : dir_("tmpfs") {
    std::string opts = "mode=1777,size=" + std::to_string(size_bytes);
    if (inodes) opts += ",nr_inodes=" + std::to_string(inodes);
    if (::mount("tmpfs", dir_.path().c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts.c_str()) < 0)
      throw std::runtime_error("mount tmpfs on " + dir_.path() + ": " + errno_text(errno));
  }
  ~ScopedTmpfs() { (void)detach_mount(dir_.path()); }
  ScopedTmpfs(const ScopedTmpfs&) = delete;
  ScopedTmpfs& operator=(const ScopedTmpfs&) = delete;
  const std::string& path() const { return dir_.path(); }

 private:
  TempDir dir_;
};

// `hostchanfs serve` on a fresh directory, running until destruction (SIGTERM, then
// SIGKILL if it does not stop within 10 s; the mount is detached in any case).
class ScopedHostchanfs {
 public:
  struct Options {
    std::uint64_t size_bytes = 32ull << 20;
    std::uint64_t inodes = 0;
    std::vector<std::string> extra_args;  // e.g. {"--uid", "1000"}
    // >= 0: the daemon prints every request (HOSTCHANFS_FUSE_DEBUG) to this descriptor,
    // as its stderr.
    int request_trace_fd = -1;
  };

  explicit ScopedHostchanfs(const Options& o) : dir_("hostchanfs") { start(o); }
  explicit ScopedHostchanfs(std::uint64_t size_bytes, std::uint64_t inodes = 0) : dir_("hostchanfs") {
    Options o;
    o.size_bytes = size_bytes;
    o.inodes = inodes;
    start(o);
  }
  ~ScopedHostchanfs() { stop(); }
  ScopedHostchanfs(const ScopedHostchanfs&) = delete;
  ScopedHostchanfs& operator=(const ScopedHostchanfs&) = delete;

  const std::string& path() const { return dir_.path(); }
  pid_t pid() const { return daemon_.pid(); }

  // SIGTERM the daemon and wait for it; its exit status (killed: 128 + 9).
  int stop() {
    if (stopped_) return status_;
    stopped_ = true;
    daemon_.terminate(std::chrono::seconds(10));
    (void)detach_mount(dir_.path());  // normally already gone: harmless
    status_ = daemon_.wait();
    return status_;
  }

 private:
  void start(const Options& o) {
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) < 0) throw std::runtime_error("pipe2 failed");
    std::vector<std::string> argv = {HOSTCHANFS_BIN, "serve", "--size", std::to_string(o.size_bytes),
                                     "--ready-fd", "3"};
    if (o.inodes) {
      argv.push_back("--inodes");
      argv.push_back(std::to_string(o.inodes));
    }
    // HOSTCHANFS_TEST_CHARGE=writer runs a whole suite on writer-charged channels
    // (tests/fs/CMakeLists.txt registers the tmpfs comparisons in both modes).
    if (const char* charge = std::getenv("HOSTCHANFS_TEST_CHARGE"); charge && *charge) {
      argv.push_back("--charge");
      argv.push_back(charge);
    }
    argv.insert(argv.end(), o.extra_args.begin(), o.extra_args.end());
    argv.push_back(dir_.path());
    std::vector<ChildProcess::Redirect> fds = {{pipefd[1], 3}};
    if (o.request_trace_fd >= 0) {
      fds.push_back({o.request_trace_fd, 2});
      ::setenv("HOSTCHANFS_FUSE_DEBUG", "1", 1);  // the child's copy of the environment
    }
    daemon_ = ChildProcess::spawn(argv, fds);
    ::unsetenv("HOSTCHANFS_FUSE_DEBUG");
    ::close(pipefd[1]);
    std::string got;
    char buf[16];
    pollfd p{pipefd[0], POLLIN, 0};
    // Waits for readiness or for the daemon to give up (EOF); the 30 s bound only
    // turns a hang into a failure, it is not a timing assertion.
    while (got.find('\n') == std::string::npos && ::poll(&p, 1, 30000) > 0) {
      ssize_t n = ::read(pipefd[0], buf, sizeof buf);
      if (n <= 0) break;
      got.append(buf, static_cast<std::size_t>(n));
    }
    ::close(pipefd[0]);
    if (got != "ready\n") {
      stop();
      throw std::runtime_error("hostchanfs serve on " + dir_.path() + " did not become ready (status " +
                               std::to_string(status_) + ")");
    }
  }

  TempDir dir_;
  ChildProcess daemon_;
  bool stopped_ = false;
  int status_ = -1;
};

// The read_ahead_kb of the backing device behind the mount at `path` (its digits, as
// sysfs prints them), or "" when there is none to read.
inline std::string read_ahead_kb(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) < 0) return "";
  std::string text = read_small_file("/sys/class/bdi/" + std::to_string(major(st.st_dev)) + ":" +
                                     std::to_string(minor(st.st_dev)) + "/read_ahead_kb");
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

}  // namespace hostchanfs::testing
