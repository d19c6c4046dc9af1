// TempDir: a fresh directory under /tmp (or another parent), removed with its contents
// when it goes. It never
// descends into a mount (a channel a failed test left mounted would lose its data, a bind
// of / would be a catastrophe): whatever is still mounted at or below it is detached first.
#pragma once

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <stdexcept>
#include <string>

#include "sys/errno_text.hpp"
#include "sys/mount.hpp"
#include "tests/support/mounts.hpp"

namespace hostchanfs::testing {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "hostchanfs-test", const std::string& parent = "/tmp") {
    std::string templ = parent + "/" + prefix + "-XXXXXX";
    if (!::mkdtemp(templ.data())) throw std::runtime_error("mkdtemp: " + errno_text(errno));
    path_ = templ;
    // Traversable by a container whose root is mapped to an unprivileged host uid.
    if (::chmod(path_.c_str(), 0755) < 0) throw std::runtime_error("chmod " + path_ + ": " + errno_text(errno));
  }
  ~TempDir() {
    auto left = mounts_under(path_);
    for (auto it = left.rbegin(); it != left.rend(); ++it) (void)detach_mount(*it);
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  // A path inside it: dir / "bundle".
  std::filesystem::path operator/(const std::string& name) const {
    return std::filesystem::path(path_) / name;
  }

 private:
  std::string path_;
};

}  // namespace hostchanfs::testing
