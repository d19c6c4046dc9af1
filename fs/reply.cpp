#include "fs/reply.hpp"

#include <cerrno>
#include <cstring>  // strerrorname_np

#include "fs/metrics.hpp"
#include "fs/session_io.hpp"
#include "sys/errno_text.hpp"

namespace hostchanfs::fs {

shm::Request request_of(fuse_req_t /*req*/) { return shm::Request{current_unique()}; }

fuse_entry_param entry_of(const shm::Attr& attr) {
  fuse_entry_param e{};
  e.ino = attr.ino;
  e.generation = attr.generation;
  e.attr = attr.to_stat();
  e.attr_timeout = kAttrTimeout;
  e.entry_timeout = kEntryTimeout;
  return e;
}

void reply_entry(fuse_req_t req, const shm::Attr& attr) {
  Filesystem& fs = filesystem_of(req);
  fuse_entry_param e = entry_of(attr);
  if (fuse_reply_entry(req, &e) != 0) fs.store.forget(attr.ino, 1);
}

void reply_create(fuse_req_t req, const shm::Attr& attr, const fuse_file_info* fi) {
  Filesystem& fs = filesystem_of(req);
  fuse_entry_param e = entry_of(attr);
  if (fuse_reply_create(req, &e, fi) != 0) {
    fs.store.release(attr.ino);
    fs.store.forget(attr.ino, 1);
  }
}

void reply_negative_entry(fuse_req_t req) {
  fuse_entry_param e{};
  e.entry_timeout = kEntryTimeout;
  fuse_reply_entry(req, &e);
}

void reply_attr(fuse_req_t req, const shm::Attr& attr) {
  struct stat st = attr.to_stat();
  fuse_reply_attr(req, &st, kAttrTimeout);
}

void reply_ok(fuse_req_t req) { fuse_reply_err(req, 0); }

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
