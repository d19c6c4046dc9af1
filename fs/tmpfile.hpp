// O_TMPFILE (FUSE_TMPFILE, opcode 51): answered in the session's own I/O layer, because
// libfuse 3.14 does not dispatch the opcode (it would answer ENOSYS, and the kernel would
// then refuse O_TMPFILE on the mount for good). The request is FUSE_CREATE's (a
// fuse_create_in and a name the kernel makes up), the reply too (an entry and an open
// handle); the file is the store's create_unnamed().
#pragma once

#include <cstddef>

#include "fs/context.hpp"

namespace hostchanfs::fs {

// If the request just read into `buf` (`len` bytes, from `fd`) is FUSE_TMPFILE, answer it
// on `fd` and return true: the caller reads the next request instead of handing this one
// to libfuse. Never throws: what goes wrong is replied as an errno and logged.
bool answer_tmpfile(int fd, const void* buf, std::size_t len, Filesystem& fs) noexcept;

}  // namespace hostchanfs::fs
