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
void raise_readahead(int mount_fd, const std::string& path) {
  auto log = log::get("fs");
  // The connection's backing device is named after the mount's device number. DONT_SYNC:
  // the kernel answers from the root inode it made at mount, without a GETATTR that no
  // daemon could answer before INIT.
  struct statx stx {};
  if (::statx(mount_fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, 0, &stx) < 0) {
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

Result<void> set_option(int fs_fd, const char* key, const std::string& value) {
  if (::fsconfig(fs_fd, FSCONFIG_SET_STRING, key, value.c_str(), 0) < 0) return last_errc();
  return success();
}

}  // namespace

Result<FuseMount> mount_fuse_on(int target_fd, const std::string& path, uid_t root_uid,
                                gid_t root_gid) {
  FuseMount m;
  m.fuse = UniqueFd(::open("/dev/fuse", O_RDWR | O_CLOEXEC));
  if (!m.fuse) return last_errc();
  UniqueFd fs(::fsopen("fuse", FSOPEN_CLOEXEC));
  if (!fs) return last_errc();
  // source and subtype make it "fuse.hostchanfs hostchanfs" in /proc/mounts, as mount(2)
  // of type fuse.hostchanfs did.
  HC_TRYV(set_option(fs.get(), "source", "hostchanfs"));
  HC_TRYV(set_option(fs.get(), "subtype", "hostchanfs"));
  HC_TRYV(set_option(fs.get(), "fd", std::to_string(m.fuse.get())));
  HC_TRYV(set_option(fs.get(), "rootmode", "40000"));
  HC_TRYV(set_option(fs.get(), "user_id", std::to_string(root_uid)));
  HC_TRYV(set_option(fs.get(), "group_id", std::to_string(root_gid)));
  for (const char* flag : {"allow_other", "default_permissions"}) {
    if (::fsconfig(fs.get(), FSCONFIG_SET_FLAG, flag, nullptr, 0) < 0) return last_errc();
  }
  if (::fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0) return last_errc();
  m.mount = UniqueFd(::fsmount(fs.get(), FSMOUNT_CLOEXEC,
                               MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
  if (!m.mount) return last_errc();
  raise_readahead(m.mount.get(), path);
  if (::move_mount(m.mount.get(), "", target_fd, "",
                   MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
    return last_errc();
  return m;
}

Result<UniqueFd> mount_fuse(const std::string& path, uid_t root_uid, gid_t root_gid) {
  UniqueFd target(::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!target) return last_errc();
  HC_TRY(mounted, mount_fuse_on(target.get(), path, root_uid, root_gid));
  return std::move(mounted.fuse);
}

Result<void> unmount_fuse(const std::string& path) {
  if (::umount2(path.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) < 0) return last_errc();
  return success();
}

}  // namespace hostchanfs::fs
