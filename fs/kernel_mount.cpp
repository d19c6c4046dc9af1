#include "fs/kernel_mount.hpp"

#include <fcntl.h>
#include <sys/mount.h>

#include <string>

namespace hostchanfs::fs {

Result<UniqueFd> mount_fuse(const std::string& path, uid_t root_uid, gid_t root_gid) {
  UniqueFd fd(::open("/dev/fuse", O_RDWR | O_CLOEXEC));
  if (!fd) return last_errc();
  std::string options = "fd=" + std::to_string(fd.get()) + ",rootmode=40000,user_id=" +
                        std::to_string(root_uid) + ",group_id=" + std::to_string(root_gid) +
                        ",allow_other,default_permissions";
  if (::mount("hostchanfs", path.c_str(), "fuse.hostchanfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              options.c_str()) < 0)
    return last_errc();
  return fd;
}

Result<void> unmount_fuse(const std::string& path) {
  if (::umount2(path.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) < 0) return last_errc();
  return success();
}

}  // namespace hostchanfs::fs
