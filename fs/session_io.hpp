// The session's own /dev/fuse I/O (fuse_session_custom_io). It exists to own the INIT
// reply and to see requests before libfuse does. libfuse 3.14 cannot negotiate
// FUSE_HANDLE_KILLPRIV_V2, and without it the kernel asks GETXATTR(security.capability)
// before every write (a second round trip per write(2)) because a filesystem with xattr
// handlers might hold file capabilities. The store kills setuid/setgid itself (on write
// by an unprivileged caller, on chown, on a setattr that asks for it), which is exactly
// what the flag promises. Nor can it negotiate FUSE_SETXATTR_EXT, the only way the kernel
// says FUSE_SETXATTR_ACL_KILL_SGID (setting an access ACL drops setgid, as on tmpfs):
// with POSIX ACLs this layer accepts it and turns each SETXATTR back into the form
// libfuse reads, keeping the flags for the handler (current_setxattr_flags).
#pragma once

#include <cstdint>

#include "fs/context.hpp"  // FUSE_USE_VERSION, fuse_lowlevel.h

#include "sys/result.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::fs {

// Serve `se` over `fuse_fd` (a mounted /dev/fuse); the session owns the descriptor from
// here on and closes it in fuse_session_destroy().
Result<void> use_session_io(fuse_session* se, UniqueFd fuse_fd);

// Whether the kernel accepted FUSE_HANDLE_KILLPRIV_V2 in INIT (for logs and tests).
bool killpriv_v2_negotiated();

// The unique id of the request this thread is handling (with bit 63, FUSE_UNIQUE_RESEND,
// when the kernel resent it), 0 outside a handler. libfuse 3.14 keeps fuse_req's unique
// to itself, but every request passes through io_read first: it stashes the header's
// unique in a thread_local of the thread that read it. That is the thread that handles
// it: fuse_session_loop_mt's workers each loop over fuse_session_receive_buf_int (our
// read) then fuse_session_process_buf_int, which calls the handler synchronously, on the
// same thread, before the next read (no queue between threads); our handlers reply
// before they return, so no other request is read on the thread while one is handled.
std::uint64_t current_unique() noexcept;

// Returns once no RELEASE is between its read and its reply. The kernel sends RELEASE
// after close(2) has returned, so a program's statfs right after closing and unlinking a
// file may be read while another worker still releases it (in writer mode: still holds
// its backing file, whose space the backing tmpfs frees only then); statfs waits, so
// that the space is seen free, as on tmpfs. That includes a RELEASE a worker has read
// and not yet looked at (preempted on its way back from read(2)): its worker is awake in
// its read, which /proc tells (a worker blocked in read(2) sleeps).
void wait_for_releases() noexcept;

// The setxattr_flags of the SETXATTR this thread is handling (FUSE_SETXATTR_EXT), 0 for
// anything else; read the same way as current_unique().
std::uint32_t current_setxattr_flags() noexcept;

}  // namespace hostchanfs::fs
