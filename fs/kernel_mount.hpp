// The kernel side of a channel: /dev/fuse opened and mounted with the options every channel
// gets, with the new mount API (fsopen, fsconfig, fsmount, then move_mount onto a directory
// descriptor). One place for both callers: `serve` mounting for itself and the controller
// mounting before it hands the descriptor to a daemon.
#pragma once

#include <sys/types.h>

#include <string>

#include "sys/result.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::fs {

// Mount flags and options: what iSulad's tmpfs gets (nosuid, nodev, noexec), usable by
// every uid with the kernel enforcing modes and the sticky bit (allow_other,
// default_permissions), and named for df and /proc/mounts (source and subtype hostchanfs).
// Returns the /dev/fuse descriptor that now serves the mount.
Result<UniqueFd> mount_fuse(const std::string& path, uid_t root_uid, gid_t root_gid);

// The same, onto the directory open at `target_fd` (MOVE_MOUNT_T_EMPTY_PATH): never through
// a path, which a racing rename could point elsewhere. Also returns an O_PATH descriptor of
// the new mount's root (the caller checks where it landed; held, it keeps a plain
// unmount busy). `path` names it in log lines only.
struct FuseMount {
  UniqueFd fuse;
  UniqueFd mount;
};
Result<FuseMount> mount_fuse_on(int target_fd, const std::string& path, uid_t root_uid,
                                gid_t root_gid);

// Readahead of a channel: one READ as large as the kernel allows (max_pages 256: 1 MiB),
// where the kernel's default of 128 KiB splits a cold sequential read into eight times as
// many round trips. mount_fuse() sets the connection's read_ahead_kb; the kernel then keeps
// the smaller of that and INIT's max_readahead, so init() asks for the same.
inline constexpr unsigned kReadaheadBytes = 1u << 20;

// Detach the mount at `path` (lazily: open files keep working until closed).
Result<void> unmount_fuse(const std::string& path);

}  // namespace hostchanfs::fs
