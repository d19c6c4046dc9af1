// The connection and the filesystem as a whole: init, statfs.
#include <sys/statvfs.h>

#include "fs/kernel_mount.hpp"
#include "fs/ops.hpp"
#include "fs/session_io.hpp"
#include "fs/passthrough.hpp"
#include "fs/reply.hpp"

namespace hostchanfs::fs::ops {

namespace {
constexpr unsigned kMaxWrite = 1u << 20;  // libfuse's largest request buffer
}

void init(void* userdata, fuse_conn_info* conn) {
  auto& fs = *static_cast<Filesystem*>(userdata);
  // Exactness over speed: every write reaches the store (no writeback cache), so ENOSPC
  // comes at the write that crosses the quota. O_TRUNC arrives as a setattr. setuid and
  // setgid are dropped by the store (FUSE_HANDLE_KILLPRIV_V2, negotiated in
  // session_io.cpp, so the kernel does not ask for security.capability before every
  // write); the v1 flag stays off. Writes arrive in memory buffers, never spliced pipes:
  // libfuse splices only through a pipe of 1 MiB + 4 KiB, which needs CAP_SYS_RESOURCE.
  conn->want &= ~(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_ATOMIC_O_TRUNC | FUSE_CAP_HANDLE_KILLPRIV |
                  FUSE_CAP_SPLICE_READ);
  // Every change to a file's data comes through this kernel (the host and every container
  // use this one connection), which keeps its page cache right by itself; the one change
  // the store makes on its own, a write-back it could not take, it invalidates itself
  // (ops_data.cpp). So no page cache is dropped when an mtime moves (libfuse's default,
  // FUSE_CAP_AUTO_INVAL_DATA): with relatime's attribute refreshes it dropped a shared
  // ring's pages under the process that had written it, which then read them back.
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
  // POSIX ACLs as tmpfs has them: the kernel enforces them from the xattrs it reads (and
  // caches); the store keeps them and the mode bits in step and applies default ACLs or
  // the umask to new inodes, so the kernel must pass the umask on unapplied (DONT_MASK).
  // A setgid to drop comes in SETXATTR_EXT's flags (session_io.cpp).
  if ((conn->capable & FUSE_CAP_POSIX_ACL) && (conn->capable & FUSE_CAP_DONT_MASK))
    conn->want |= FUSE_CAP_POSIX_ACL | FUSE_CAP_DONT_MASK;
  // `serve --cache=writeback` trades that exactness for fewer, larger writes.
  if (fs.writeback_cache && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
    conn->want |= FUSE_CAP_WRITEBACK_CACHE;
  // Symlink targets never change behind the kernel's back.
  if (conn->capable & FUSE_CAP_CACHE_SYMLINKS) conn->want |= FUSE_CAP_CACHE_SYMLINKS;
  conn->max_write = kMaxWrite;
  conn->max_readahead = kReadaheadBytes;
  conn->time_gran = 1;
  fs.log->info("{}: serving ({} pages, {} inodes, max_write {}, max_readahead {}, cache {})",
               fs.mountpoint, fs.store.quota_pages(), fs.store.max_inodes(), conn->max_write,
               conn->max_readahead,
               (conn->want & FUSE_CAP_WRITEBACK_CACHE) ? "writeback" : "exact");
}

void statfs(fuse_req_t req, fuse_ino_t /*ino*/) {
  Filesystem& fs = filesystem_of(req);
  wait_for_releases();  // a file closed and unlinked just before is seen freed, as on tmpfs
  shm::StatFs s = fs.store.statfs();
  if (fs.passthrough) fs.passthrough->overlay(s);  // data, long symlinks and xattrs: one tmpfs
  struct statvfs v {};
  v.f_bsize = s.block_size;
  v.f_frsize = s.block_size;
  v.f_blocks = s.blocks;
  v.f_bfree = s.blocks_free;
  v.f_bavail = s.blocks_free;
  v.f_files = s.files;
  v.f_ffree = s.files_free;
  v.f_favail = s.files_free;
  v.f_namemax = s.name_max;
  fuse_reply_statfs(req, &v);
}

}  // namespace hostchanfs::fs::ops
