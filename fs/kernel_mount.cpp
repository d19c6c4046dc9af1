#include "fs/kernel_mount.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "sys/errno_text.hpp"
#include "sys/log.hpp"

namespace hostchanfs::fs {

namespace {

// Best effort: without a writable /sys (inside a container, say) the channel keeps the
// kernel's 128 KiB and only cold reads are slower, so a failure is logged, not returned.
void raise_readahead(const std::string& path) {
  auto log = log::get("fs");
  // The connection's backing device is named after the mount's device number. DONT_SYNC:
  // the kernel answers from the root inode it made at mount, without a GETATTR that no
  // daemon could answer before INIT.
  struct statx stx {};
  if (::statx(AT_FDCWD, path.c_str(), AT_STATX_DONT_SYNC | AT_SYMLINK_NOFOLLOW, 0, &stx) < 0) {
    log->warn("{}: readahead stays at the kernel default: statx: {}", path, errno_text(errno));
    return;
  }
  std::string knob = "/sys/class/bdi/" + std::to_string(stx.stx_dev_major) + ":" +
                     std::to_string(stx.stx_dev_minor) + "/read_ahead_kb";
  std::string kib = std::to_string(kReadaheadBytes / 1024);
  UniqueFd fd(::open(knob.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd || ::write(fd.get(), kib.data(), kib.size()) != static_cast<ssize_t>(kib.size()))
    log->warn("{}: readahead stays at the kernel default: cannot write {} to {}: {}", path, kib,
              knob, errno_text(errno));
}

}  // namespace

Result<UniqueFd> mount_fuse(const std::string& path, uid_t root_uid, gid_t root_gid) {
  UniqueFd fd(::open("/dev/fuse", O_RDWR | O_CLOEXEC));
  if (!fd) return last_errc();
  std::string options = "fd=" + std::to_string(fd.get()) + ",rootmode=40000,user_id=" +
                        std::to_string(root_uid) + ",group_id=" + std::to_string(root_gid) +
                        ",allow_other,default_permissions";
  if (::mount("hostchanfs", path.c_str(), "fuse.hostchanfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              options.c_str()) < 0)
    return last_errc();
  raise_readahead(path);
  return fd;
}

Result<void> unmount_fuse(const std::string& path) {
  if (::umount2(path.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) < 0) return last_errc();
  return success();
}

}  // namespace hostchanfs::fs
