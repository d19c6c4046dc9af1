// Directory handles and listings: opendir, readdir, readdirplus, releasedir, fsyncdir.
#include <memory>
#include <string>

#include "fs/ops.hpp"
#include "fs/reply.hpp"

namespace hostchanfs::fs::ops {

namespace {

// Fill one reply buffer of at most `size` bytes from `offset`. The store counts a lookup
// only for entries that fit (readdirplus), so nothing is counted that the kernel never saw.
void list(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus) {
  // This worker's reply buffer, kept between listings and never cleared: only the `used`
  // bytes are sent, and libfuse writes every one of them (an entry's padding included).
  // A std::vector(size) here zeroed the kernel's whole getdents size (32 KiB from glibc)
  // at every READDIR: 1.6% of the daemon's CPU in a pinned profile of mkdir's bench.
  thread_local std::unique_ptr<char[]> t_buf;
  thread_local std::size_t t_capacity = 0;
  if (t_capacity < size) {
    t_buf.reset(new char[size]);
    t_capacity = size;
  }
  char* const buf = t_buf.get();
  std::size_t used = 0;
  std::string name;  // fuse_add_direntry* want a NUL-terminated name
  auto emit = [&](const shm::DirEntry& d, const shm::Attr* attr) {
    name.assign(d.name);
    auto next = static_cast<off_t>(d.next_offset);
    std::size_t need = 0;
    if (plus) {
      fuse_entry_param e{};
      if (attr && d.name != "." && d.name != "..") {
        e = entry_of(filesystem_of(req), *attr);
      } else {
        // The kernel ignores . and .. in readdirplus; no lookup is counted for them.
        e.attr.st_ino = d.ino;
        e.attr.st_mode = d.mode;
      }
      need = fuse_add_direntry_plus(req, buf + used, size - used, name.c_str(), &e, next);
    } else {
      struct stat st {};
      st.st_ino = d.ino;
      st.st_mode = d.mode;
      need = fuse_add_direntry(req, buf + used, size - used, name.c_str(), &st, next);
    }
    if (need > size - used) return false;
    used += need;
    return true;
  };
  auto r = filesystem_of(req).store.readdir(ino, static_cast<std::uint64_t>(off), plus, emit);
  if (!r) return reply_error(req, r.error(), plus ? "readdirplus" : "readdir", ino);
  note_read(req, ino, 0);  // getdents reads the directory (READDIR carries no open flags)
  fuse_reply_buf(req, buf, used);
}

}  // namespace

void opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  auto r = filesystem_of(req).store.opendir(ino);
  if (!r) return reply_error(req, r.error(), "opendir", ino);
  fuse_reply_open(req, fi);
}

void readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* /*fi*/) {
  list(req, ino, size, off, false);
}

void readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* /*fi*/) {
  list(req, ino, size, off, true);
}

void releasedir(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* /*fi*/) { reply_ok(req); }

// Memory has nothing to flush.
void fsyncdir(fuse_req_t req, fuse_ino_t /*ino*/, int /*datasync*/, fuse_file_info* /*fi*/) {
  reply_ok(req);
}

}  // namespace hostchanfs::fs::ops
