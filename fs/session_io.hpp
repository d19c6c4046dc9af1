// The session's own /dev/fuse I/O (fuse_session_custom_io). It exists for one reason: to
// own the INIT reply. libfuse 3.14 cannot negotiate FUSE_HANDLE_KILLPRIV_V2, and without
// it the kernel asks GETXATTR(security.capability) before every write (a second round
// trip per write(2)) because a filesystem with xattr handlers might hold file
// capabilities. The store kills setuid/setgid itself (on write by an unprivileged caller,
// on chown, on a setattr that asks for it), which is exactly what the flag promises.
#pragma once

#include "fs/context.hpp"  // FUSE_USE_VERSION, fuse_lowlevel.h

#include "sys/result.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::fs {

// Serve `se` over `fuse_fd` (a mounted /dev/fuse); the session owns the descriptor from
// here on and closes it in fuse_session_destroy().
Result<void> use_session_io(fuse_session* se, UniqueFd fuse_fd);

// Whether the kernel accepted FUSE_HANDLE_KILLPRIV_V2 in INIT (for logs and tests).
bool killpriv_v2_negotiated();

}  // namespace hostchanfs::fs
