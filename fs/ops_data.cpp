// File handles and data: open, create, read, write_buf, flush, release, fsync,
// fallocate, lseek, copy_file_range.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include <boost/container/small_vector.hpp>

#include "fs/ops.hpp"
#include "fs/passthrough.hpp"
#include "fs/reply.hpp"
#include "shm/tmpfs_rules.hpp"

namespace hostchanfs::fs::ops {

namespace {

// The kernel may keep a file's cached pages across opens: nothing but this mount
// changes the data, and its own writes keep the cache current.
// (With passthrough the reply is rewritten: the kernel's cache is then the backing file's.)
void prepare_handle(fuse_file_info* fi) { fi->keep_cache = 1; }

// --charge writer: the kernel moves a regular file's data (and keeps its atime) itself.
bool through_passthrough(const Filesystem& fs, const shm::Attr& attr) {
  return fs.passthrough && S_ISREG(attr.mode);
}

// Such a file's open gets its backing file (fs/passthrough.hpp).
Result<void> open_backing(Filesystem& fs, const shm::Attr& attr, Passthrough::Inode inode) {
  if (!through_passthrough(fs, attr)) return success();
  return fs.passthrough->open(attr, inode);
}

// Passthrough writes never reach the daemon, so the store cannot drop setuid/setgid at an
// unprivileged write, as tmpfs does: it drops them when such a writer opens the file for
// writing (earlier than tmpfs, never later). No identity of its own (the OPEN's is the
// open's): a resent OPEN drops them again, which changes nothing.
void drop_privileges_before_writes(fuse_req_t req, Filesystem& fs, const shm::Attr& attr, int flags) {
  if (!fs.passthrough) return;  // the store drops them at the write itself
  bool writes = (flags & O_ACCMODE) != O_RDONLY;
  if (!S_ISREG(attr.mode) || !writes || caller_of(req).privileged) return;
  if (shm::without_suid_sgid(attr.mode) == attr.mode) return;
  shm::AttrChange change;
  change.kill_suid_sgid = true;
  (void)fs.store.setattr(attr.ino, change, caller_of(req), shm::Request{});
}

// The backing descriptor of an open regular file in writer mode, -1 otherwise.
int backing_fd(fuse_req_t req, fuse_ino_t ino) {
  Passthrough* pt = filesystem_of(req).passthrough;
  return pt ? pt->fd_of(ino) : -1;
}

// A system call on a backing file: its result, or its errno as the reply.
template <class T>
bool backing_failed(fuse_req_t req, T rc, const char* op, fuse_ino_t ino) {
  if (rc >= 0) return false;
  reply_error(req, static_cast<std::errc>(errno), op, ino);
  return true;
}

}  // namespace

void open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Filesystem& fs = filesystem_of(req);
  // One store call: the handle counted, and the attributes the backing file needs.
  auto opened = fs.store.open(ino, request_of(req));
  if (!opened) return reply_error(req, opened.error(), "open", ino);
  drop_privileges_before_writes(req, fs, opened.value(), fi->flags);
  if (auto backed = open_backing(fs, opened.value(), Passthrough::Inode::kExisting); !backed) {
    close_handle(fs, ino);
    return reply_error(req, backed.error(), "open", ino);
  }
  // Reads the cache answers never reach us: an open for reading stands for them. Not with
  // passthrough: the kernel's reads keep the backing file's atime, which is the file's
  // (Passthrough::overlay), so the store's would change nothing but cost a tx and a notify.
  if (!through_passthrough(fs, opened.value()) && (fi->flags & O_ACCMODE) != O_WRONLY)
    note_read(req, ino, fi->flags);
  prepare_handle(fi);
  // Not received (interrupted): the handle is closed again, as no request of the kernel's.
  if (fuse_reply_open(req, fi) != 0) close_handle(fs, ino);
}

void create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  Filesystem& fs = filesystem_of(req);
  auto made = fs.store.create_and_open(parent, name, mode, caller_of(req), request_of(req));
  if (!made) return reply_error(req, made.error(), "create", parent);
  if (fs.passthrough) fs.passthrough->settle_store_pages();  // inherited ACLs (passthrough.hpp)
  if (auto backed = open_backing(fs, made.value(), Passthrough::Inode::kCreated); !backed) {
    close_handle(fs, made.value().ino);
    fs.store.forget(made.value().ino, 1);
    return reply_error(req, backed.error(), "create", parent);
  }
  prepare_handle(fi);
  reply_create(req, made.value(), fi);
}

void read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  // One buffer per worker thread, kept: a fresh one per request would be fresh pages,
  // each faulted in again (the store itself never maps file data; see shm/data_region.hpp).
  thread_local std::vector<std::byte> buffer;
  if (buffer.size() < size) buffer.resize(size);
  if (int fd = backing_fd(req, ino); fd >= 0) {  // passthrough reads never come; just in case
    ssize_t n = ::pread(fd, buffer.data(), size, off);
    if (backing_failed(req, n, "read", ino)) return;
    fuse_reply_buf(req, reinterpret_cast<const char*>(buffer.data()), static_cast<std::size_t>(n));
    return;
  }
  auto got = filesystem_of(req).store.read(ino, static_cast<std::uint64_t>(off),
                                           std::span(buffer.data(), size));
  if (!got) return reply_error(req, got.error(), "read", ino);
  note_read(req, ino, fi->flags);
  fuse_reply_buf(req, reinterpret_cast<const char*>(buffer.data()), got.value());
}

void write_buf(fuse_req_t req, fuse_ino_t ino, fuse_bufvec* bufv, off_t off, fuse_file_info* fi) {
  Filesystem& fs = filesystem_of(req);
  boost::container::small_vector<iovec, 4> iov;  // a FUSE write is one or two buffers
  std::vector<std::byte> bounce;
  bool in_memory = true;
  for (std::size_t i = bufv->idx; i < bufv->count; ++i)
    in_memory = in_memory && !(bufv->buf[i].flags & FUSE_BUF_IS_FD);
  if (in_memory) {
    for (std::size_t i = bufv->idx; i < bufv->count; ++i) {
      const fuse_buf& b = bufv->buf[i];
      std::size_t skip = i == bufv->idx ? bufv->off : 0;
      if (b.size > skip) iov.push_back(iovec{static_cast<char*>(b.mem) + skip, b.size - skip});
    }
  } else {
    // Spliced data (a pipe): copy it out first.
    bounce.resize(fuse_buf_size(bufv));
    fuse_bufvec dst = FUSE_BUFVEC_INIT(bounce.size());
    dst.buf[0].mem = bounce.data();
    ssize_t n = fuse_buf_copy(&dst, bufv, FUSE_BUF_NO_SPLICE);
    if (n < 0) return reply_error(req, static_cast<std::errc>(-n), "write", ino);
    iov.push_back(iovec{bounce.data(), static_cast<std::size_t>(n)});
  }
  if (int fd = backing_fd(req, ino); fd >= 0) {  // passthrough writes never come; just in case
    ssize_t n = ::pwritev(fd, iov.data(), static_cast<int>(iov.size()), off);
    if (backing_failed(req, n, "write", ino)) return;
    fuse_reply_write(req, static_cast<std::size_t>(n));
    return;
  }
  auto r = fs.store.write(ino, static_cast<std::uint64_t>(off), std::span<const iovec>(iov.data(), iov.size()), caller_of(req), request_of(req));
  std::size_t want = 0, stored = r ? r.value() : 0;
  for (const iovec& v : iov) want += v.iov_len;
  if (r) {
    fuse_reply_write(req, stored);
  } else {
    reply_error(req, r.error(), "write", ino);
  }
  // A write-back of cached pages (a shared mapping's, or the writeback cache's) that the
  // store could not take in full: the kernel keeps the pages, clean, and would serve
  // their bytes to every reader though the store never held them. Drop them, so that
  // reads come here and see what the store has. Only after the reply: until it, those
  // pages are under write-back, and invalidating them would wait for this very reply.
  if (fi->writepage && stored < want)
    invalidate_data(fs, ino, static_cast<std::uint64_t>(off) + stored, want - stored);
}

// Memory has nothing to flush or sync; the data is in the store once write returns.
// flush answers ENOSYS on purpose: the kernel then remembers that this filesystem has no
// flush and stops sending one at every close(2) — a round trip saved per close. (Locks
// are the kernel's own, so no lock owner needs a flush either.)
void flush(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* /*fi*/) {
  fuse_reply_err(req, ENOSYS);
}

void fsync(fuse_req_t req, fuse_ino_t /*ino*/, int /*datasync*/, fuse_file_info* /*fi*/) {
  reply_ok(req);
}

void release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* /*fi*/) {
  close_handle(filesystem_of(req), ino, request_of(req));
  reply_ok(req);
}

void fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
               fuse_file_info* /*fi*/) {
  auto from = unsigned_arg(offset), len = unsigned_arg(length);
  if (!from || !len) return reply_error(req, std::errc::invalid_argument, "fallocate", ino);
  if (int fd = backing_fd(req, ino); fd >= 0) {
    if (!backing_failed(req, ::fallocate(fd, mode, offset, length), "fallocate", ino)) reply_ok(req);
    return;
  }
  auto r = filesystem_of(req).store.fallocate(ino, mode, *from, *len, request_of(req));
  if (!r) return reply_error(req, r.error(), "fallocate", ino);
  reply_ok(req);
}

// The kernel answers SEEK_SET/CUR/END itself; only SEEK_DATA and SEEK_HOLE come here.
void lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info* /*fi*/) {
  auto from = unsigned_arg(off);
  if (!from) return reply_error(req, std::errc::invalid_argument, "lseek", ino);
  if (int fd = backing_fd(req, ino); fd >= 0) {
    off_t to = ::lseek(fd, off, whence);
    if (!backing_failed(req, to, "lseek", ino)) fuse_reply_lseek(req, to);
    return;
  }
  auto r = filesystem_of(req).store.seek(ino, *from, whence);
  if (!r) return reply_error(req, r.error(), "lseek", ino);
  fuse_reply_lseek(req, static_cast<off_t>(r.value()));
}

void copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, fuse_file_info* /*fi_in*/,
                     fuse_ino_t ino_out, off_t off_out, fuse_file_info* /*fi_out*/, size_t len,
                     int flags) {
  auto in_from = unsigned_arg(off_in), out_from = unsigned_arg(off_out);
  if (!in_from || !out_from)
    return reply_error(req, std::errc::invalid_argument, "copy_file_range", ino_in);
  if (int in = backing_fd(req, ino_in), out = backing_fd(req, ino_out); in >= 0 && out >= 0) {
    loff_t from = off_in, to = off_out;
    ssize_t n = ::copy_file_range(in, &from, out, &to, len, static_cast<unsigned>(flags));
    if (!backing_failed(req, n, "copy_file_range", ino_in)) fuse_reply_write(req, static_cast<std::size_t>(n));
    return;
  }
  auto r = filesystem_of(req).store.copy_file_range(ino_in, *in_from, ino_out, *out_from, len,
                                                    static_cast<unsigned>(flags), caller_of(req),
                                                    request_of(req));
  if (!r) return reply_error(req, r.error(), "copy_file_range", ino_in);
  fuse_reply_write(req, r.value());
}

}  // namespace hostchanfs::fs::ops
