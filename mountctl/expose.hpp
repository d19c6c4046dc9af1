// expose_into: the one way a channel enters a container (the controller calls it for
// `run` and the OCI hook). New mount API: clone the host mount detached, set its
// attributes while it is still ours, then attach it from inside the container's mount
// namespace.
#pragma once

#include <sys/types.h>

#include <string>

#include "mountctl/error.hpp"

namespace hostchanfs::mountctl {

// Bind the mount whose root is open at `mount_fd` (host mount namespace; the controller
// opens it by descriptor, host_path.hpp; `host_path` names it in messages) into the mount
// namespace of `pid` at `container_path`, resolved inside `rootfs` (a path in that
// namespace) with openat2 RESOLVE_IN_ROOT, so a symlink in the rootfs cannot make it land
// outside; missing directories are created. The clone is nosuid, nodev, noexec, private,
// and read-only when `read_only` (which the container cannot undo). Must be called from
// the host mount namespace; forks a child for setns. Errors are one line.
Expected<void> expose_into(int mount_fd, const std::string& host_path, pid_t pid,
                           const std::string& rootfs, const std::string& container_path,
                           bool read_only);

}  // namespace hostchanfs::mountctl
