#include "fs/reply.hpp"

#include <fcntl.h>

#include <cerrno>
#include <cstring>  // strerrorname_np

#include "fs/passthrough.hpp"
#include "fs/metrics.hpp"
#include "fs/session_io.hpp"
#include "sys/errno_text.hpp"

namespace hostchanfs::fs {

shm::Request request_of(fuse_req_t /*req*/) { return shm::Request{current_unique()}; }

shm::Attr seen_attr(const Filesystem& fs, shm::Attr attr) {
  if (fs.passthrough) fs.passthrough->overlay(attr);
  return attr;
}

namespace {

fuse_entry_param entry_with(const shm::Attr& attr) {
  fuse_entry_param e{};
  e.ino = attr.ino;
  e.generation = attr.generation;
  e.attr = attr.to_stat();
  e.attr_timeout = kAttrTimeout;
  e.entry_timeout = kEntryTimeout;
  return e;
}

}  // namespace

fuse_entry_param entry_of(const Filesystem& fs, const shm::Attr& attr) { return entry_with(seen_attr(fs, attr)); }

void close_handle(Filesystem& fs, shm::Ino ino, const shm::Request& req) {
  fs.store.release(ino, req);
  if (fs.passthrough) fs.passthrough->release(ino);
}

void reply_entry(fuse_req_t req, const shm::Attr& attr) {
  Filesystem& fs = filesystem_of(req);
  fuse_entry_param e = entry_of(fs, attr);
  if (fuse_reply_entry(req, &e) != 0) fs.store.forget(attr.ino, 1);
}

void reply_create(fuse_req_t req, const shm::Attr& attr, const fuse_file_info* fi) {
  Filesystem& fs = filesystem_of(req);
  // A backing file made by this create holds the store's attributes (size 0, the
  // inode's times): nothing to read back from it.
  bool fresh = fs.passthrough && fs.passthrough->made_backing_file();
  fuse_entry_param e = fresh ? entry_with(attr) : entry_of(fs, attr);
  if (fuse_reply_create(req, &e, fi) != 0) {
    close_handle(fs, attr.ino);
    fs.store.forget(attr.ino, 1);
  }
}

void reply_negative_entry(fuse_req_t req) {
  fuse_entry_param e{};
  e.entry_timeout = kEntryTimeout;
  fuse_reply_entry(req, &e);
}

void reply_attr(fuse_req_t req, const shm::Attr& attr) {
  struct stat st = seen_attr(filesystem_of(req), attr).to_stat();
  fuse_reply_attr(req, &st, kAttrTimeout);
}

void reply_ok(fuse_req_t req) { fuse_reply_err(req, 0); }

namespace {

// off < 0: the attributes only; otherwise the pages of [off, off + len) as well.
void invalidate(Filesystem& fs, fuse_ino_t ino, off_t off, off_t len, const char* what) {
  if (!fs.session) return;
  int rc = fuse_lowlevel_notify_inval_inode(fs.session, ino, off, len);
  if (rc < 0 && rc != -ENOENT)  // ENOENT: the kernel holds no such inode, nothing cached
    fs.log->warn("{}: cannot invalidate the {} of inode {}: {}", fs.mountpoint, what, ino, errno_text(-rc));
}

}  // namespace

void invalidate_attrs(Filesystem& fs, fuse_ino_t ino) { invalidate(fs, ino, -1, 0, "attributes"); }

void invalidate_data(Filesystem& fs, fuse_ino_t ino, std::uint64_t offset, std::uint64_t len) {
  invalidate(fs, ino, static_cast<off_t>(offset), static_cast<off_t>(len), "cached pages");
}

void note_read(fuse_req_t req, fuse_ino_t ino, int open_flags) {
  if (open_flags & O_NOATIME) return;
  Filesystem& fs = filesystem_of(req);
  auto changed = fs.store.accessed(ino, request_of(req));
  if (changed && changed.value()) invalidate_attrs(fs, ino);
}

namespace {

bool is_ordinary(int err) {
  switch (err) {
    case ENOENT: case EEXIST: case ENOTEMPTY: case ENOSPC: case ENODATA: case ERANGE:
    case EPERM: case EACCES: case ENOTDIR: case EISDIR: case EINVAL: case ENAMETOOLONG:
    case EXDEV: case EOPNOTSUPP: case EMLINK: case EFBIG: case ENXIO: case ENODEV:
    case E2BIG: case EBUSY:
      return true;
    default:
      return false;
  }
}

}  // namespace

void reply_error(fuse_req_t req, std::errc error, const char* op, fuse_ino_t ino) {
  int err = to_errno(error);
  Filesystem& fs = filesystem_of(req);
  auto level = is_ordinary(err) ? spdlog::level::debug : spdlog::level::warn;
  fs.log->log(level, "{}: {} on inode {} failed: {} ({})", fs.mountpoint, op, ino,
              strerrorname_np(err) ? strerrorname_np(err) : "?", errno_text(err));
  count_error_reply(err);
  fuse_reply_err(req, err);
}

}  // namespace hostchanfs::fs
