// Trace: what a program observes, as lines of text, so that the same steps run on kernel
// tmpfs and on hostchanfs can be compared line by line. Paths are recorded relative to
// the mount's root; return values with their errno names; stat and statfs with the
// fields a program can rely on (no inode numbers, devices or times).
#pragma once

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "sys/errno_text.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/files.hpp"

namespace hostchanfs::testing {

class Trace {
 public:
  explicit Trace(std::string root) : root_(std::move(root)) {}

  std::string path(const std::string& rel) const { return rel.empty() ? root_ : root_ + "/" + rel; }
  const char* p(const std::string& rel) {  // a C string that lives as long as the trace
    keep_.push_back(path(rel));
    return keep_.back().c_str();
  }
  const std::string& root() const { return root_; }

  // Record a system call's result: "label = rc" or "label = -1 ENOENT". Pass the call
  // itself as the argument, so errno is read right after it.
  long rc(const std::string& label, long result) {
    int err = errno;
    if (result < 0)
      add(label + " = " + std::to_string(result) + " " + errno_name(err));
    else
      add(label + " = " + std::to_string(result));
    errno = err;
    return result;
  }
  // Like rc(), but only whether it failed and how (for calls returning fds or sizes
  // that may legitimately differ).
  long ok(const std::string& label, long result) {
    int err = errno;
    add(label + (result < 0 ? " failed " + errno_name(err) : " ok"));
    errno = err;
    return result;
  }

  void stat(const std::string& rel) {
    struct stat st {};
    if (::lstat(path(rel).c_str(), &st) < 0) {
      add("stat " + rel + ": " + errno_name(errno));
      return;
    }
    char buf[200];
    std::snprintf(buf, sizeof buf, "stat %s: mode=%06o nlink=%lu uid=%u gid=%u size=%lld blocks=%lld",
                  rel.c_str(), st.st_mode, static_cast<unsigned long>(st.st_nlink), st.st_uid,
                  st.st_gid, static_cast<long long>(st.st_size), static_cast<long long>(st.st_blocks));
    add(buf);
  }

  void statfs(const std::string& label = "statfs") {
    struct statvfs v {};
    if (::statvfs(root_.c_str(), &v) < 0) {
      add(label + ": " + errno_name(errno));
      return;
    }
    char buf[200];
    std::snprintf(buf, sizeof buf, "%s: bsize=%lu blocks=%llu bfree=%llu bavail=%llu files=%llu ffree=%llu namemax=%lu",
                  label.c_str(), v.f_bsize, static_cast<unsigned long long>(v.f_blocks),
                  static_cast<unsigned long long>(v.f_bfree), static_cast<unsigned long long>(v.f_bavail),
                  static_cast<unsigned long long>(v.f_files), static_cast<unsigned long long>(v.f_ffree),
                  v.f_namemax);
    add(buf);
  }

  // Sorted names with their d_type, as readdir returns them (. and .. included).
  void list(const std::string& rel) {
    DIR* d = ::opendir(path(rel).c_str());
    if (!d) {
      add("list " + rel + ": " + errno_name(errno));
      return;
    }
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) names.push_back(std::string(e->d_name) + ":" + std::to_string(e->d_type));
    ::closedir(d);
    std::sort(names.begin(), names.end());
    std::string line = "list " + rel + ":";
    for (const auto& n : names) line += " " + n;
    add(line);
  }

  void add(std::string line) { lines_.push_back(std::move(line)); }
  const std::vector<std::string>& lines() const { return lines_; }

  // Run `steps` in a child that has become uid:gid (no supplementary groups); its lines
  // are appended here, prefixed with the uid.
  void as_user(uid_t uid, gid_t gid, const std::function<void(Trace&)>& steps) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0) {
      add("as_user: pipe failed");
      return;
    }
    std::string root = root_;
    auto child = ChildProcess::fork([&]() -> int {
      ::close(fds[0]);
      if (::setgroups(0, nullptr) < 0 || ::setresgid(gid, gid, gid) < 0 || ::setresuid(uid, uid, uid) < 0)
        return 3;
      Trace t(root);
      steps(t);
      std::string out;
      for (const auto& l : t.lines()) out += l + "\n";
      for (std::size_t done = 0; done < out.size();) {
        ssize_t n = ::write(fds[1], out.data() + done, out.size() - done);
        if (n <= 0) return 4;
        done += static_cast<std::size_t>(n);
      }
      return 0;
    });
    ::close(fds[1]);
    std::string text;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
    int status = child.wait();
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) add("[uid " + std::to_string(uid) + "] " + line);
    if (status != 0) add("[uid " + std::to_string(uid) + "] child exit " + std::to_string(status));
  }

 private:
  std::string root_;
  std::vector<std::string> lines_;
  std::vector<std::string> keep_;
};

// Small helpers that record into a trace.
inline void write_file(Trace& t, const std::string& rel, const std::string& data, mode_t mode = 0644) {
  int fd = ::open(t.path(rel).c_str(), O_WRONLY | O_CREAT | O_TRUNC, mode);
  if (fd < 0) {
    t.add("write_file " + rel + ": open " + errno_name(errno));
    return;
  }
  t.rc("write " + rel, ::write(fd, data.data(), data.size()));
  ::close(fd);
}

}  // namespace hostchanfs::testing
