// Undoing mounts: one way to take a mount away, and an owner that does it when it goes.
#pragma once

#include <sys/mount.h>

#include <string>
#include <utility>

#include "sys/result.hpp"

namespace hostchanfs {

enum class Unmounted {
  kUnmounted,   // gone
  kDetached,    // it was busy: detached lazily, open files keep working until closed
  kNotMounted,  // nothing was mounted there
};

// Unmount `path` (a symlink at it is not followed), lazily when it is busy.
inline Result<Unmounted> unmount_or_detach(const std::string& path) noexcept {
  if (::umount2(path.c_str(), UMOUNT_NOFOLLOW) == 0) return Unmounted::kUnmounted;
  std::errc e = last_errc();
  if (e == std::errc::invalid_argument || e == std::errc::no_such_file_or_directory)
    return Unmounted::kNotMounted;
  if (e != std::errc::device_or_resource_busy) return e;
  if (::umount2(path.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) < 0) return last_errc();
  return Unmounted::kDetached;
}

// Detach whatever is mounted at `path` now (lazily: open files keep working).
inline Result<void> detach_mount(const std::string& path) noexcept {
  if (::umount2(path.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) < 0) return last_errc();
  return success();
}

// The owner of the mount at a path: unmount_or_detach() when it goes, unless released.
class MountOwner {
 public:
  MountOwner() noexcept = default;
  explicit MountOwner(std::string path) noexcept : path_(std::move(path)) {}
  MountOwner(const MountOwner&) = delete;
  MountOwner& operator=(const MountOwner&) = delete;
  MountOwner(MountOwner&& o) noexcept : path_(std::exchange(o.path_, {})) {}
  MountOwner& operator=(MountOwner&& o) noexcept {
    if (this != &o) {
      reset();
      path_ = std::exchange(o.path_, {});
    }
    return *this;
  }
  ~MountOwner() { reset(); }

  const std::string& path() const noexcept { return path_; }
  // Keep the mount: nothing happens when this owner goes.
  void release() noexcept { path_.clear(); }
  void reset() noexcept {
    if (!path_.empty()) (void)unmount_or_detach(path_);
    path_.clear();
  }

 private:
  std::string path_;
};

}  // namespace hostchanfs
