// A channel's place on the host, handled by descriptor and recorded by identity. The host
// path is walked from "/" without following any symlink (sys/dirs.hpp): a symlink anywhere
// in it is refused. Missing directories are made on their parent's descriptor and checked
// to be the ones made; the FUSE mount goes onto the host directory's descriptor, and is
// checked afterwards to sit at the host path (a racing rename that moved the directory
// makes the mount go again). What was made is recorded by what it is: each directory by
// (device, inode), the mount by its mount ids and device, so that removing the channel
// unmounts exactly that mount, wherever it is now, and removes exactly those directories,
// never something a rename or a forged record put in their place.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "mountctl/error.hpp"
#include "sys/dirs.hpp"
#include "sys/mount.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::mountctl {

// Which mount is a channel's. `unique_id` is never given to another mount while the system
// runs (statx STATX_MNT_ID_UNIQUE); `id` is the reusable one /proc/self/mountinfo lists,
// used only to find the mount; `dev` is its FUSE connection's device.
struct MountIdentity {
  std::uint64_t unique_id = 0;
  std::uint32_t id = 0;
  dev_t dev = 0;
  bool operator==(const MountIdentity&) const = default;
};

// What a channel made on the host.
struct HostMount {
  std::vector<MadeDir> made_dirs;  // the missing parents and the host path, outermost first
  MountIdentity mount;
  UniqueFd fuse_fd;  // the /dev/fuse descriptor that serves the mount
};

// Make the host path (and its missing parents) and mount a new FUSE connection on it (root
// owned by uid/gid, mode 1777 once the daemon answers). kBadInput for a path that exists
// or has a symlink or a non-directory in it; kFailure when it changed while being made (a
// racing rename) or the mount failed. All or nothing.
Expected<HostMount> mount_host_path(const std::string& host_path, uid_t uid, gid_t gid);

// Unmount the channel's mount wherever it is now (a rename of a parent moves it), reached
// without a symlink; lazily when busy. kNotMounted when it is mounted nowhere. kFailure when
// it cannot be reached, or is still mounted afterwards. A mount that is not the channel's
// (another file system, another connection) is never touched.
Expected<Unmounted> unmount_host_path(const std::string& host_path, const MountIdentity& mount);

// An O_PATH descriptor of the channel's mount root, checked to be its mount (expose clones
// it into a container). kNotFound when it is mounted nowhere.
Expected<UniqueFd> open_channel_mount(const std::string& host_path, const MountIdentity& mount);

// Whether the channel's mount is still mounted (in this mount namespace).
bool is_mounted(const MountIdentity& mount);

// The mount points of every hostchanfs mount in this mount namespace, whichever controller
// made it (from /proc/self/mountinfo: nothing is asked of a channel's daemon).
std::vector<std::string> channel_mount_points();

// Remove the directories the channel made (remove_dirs: only those very directories). A
// kFailure naming the host path when it is still there afterwards (something else is
// mounted on it, or it holds files that are not the channel's).
Expected<void> remove_host_dirs(const std::string& host_path, const std::vector<MadeDir>& made);

}  // namespace hostchanfs::mountctl
