// Extended attributes: setxattr, getxattr, listxattr, removexattr. The kernel has already
// checked the namespace rules (trusted.* needs CAP_SYS_ADMIN, user.* only on files and
// directories) and, for POSIX ACLs, parsed and re-encoded the ACL; the store keeps the
// values, charges them to the quota and keeps mode bits and ACLs in step.
#include <vector>

#include <cstring>

#include "fs/ops.hpp"
#include "fs/passthrough.hpp"
#include "fs/reply.hpp"
#include "fs/session_io.hpp"

namespace hostchanfs::fs::ops {

namespace {

// getxattr and listxattr share the size-probe protocol: size 0 asks how big.
template <class Fetch>
void reply_sized(fuse_req_t req, size_t size, Fetch fetch, const char* op, fuse_ino_t ino) {
  std::vector<char> buf(size);
  Result<std::size_t> r = fetch(std::span<char>(buf));
  if (!r) return reply_error(req, r.error(), op, ino);
  if (size == 0) {
    fuse_reply_xattr(req, r.value());
  } else {
    fuse_reply_buf(req, buf.data(), r.value());
  }
}

}  // namespace

void setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
              int flags) {
  auto bytes = std::span(reinterpret_cast<const std::byte*>(value), size);
  Filesystem& fs = filesystem_of(req);
  const bool kill_sgid = (current_setxattr_flags() & FUSE_SETXATTR_ACL_KILL_SGID) != 0;
  auto set = [&] { return fs.store.setxattr(ino, name, bytes, flags, request_of(req), kill_sgid); };
  // --charge writer: the worst case the inode's packed xattrs can grow by (its record and
  // a page boundary) must fit in the backing tmpfs first.
  std::uint64_t pages = (8 + std::strlen(name) + size + shm::kPageSize - 1) / shm::kPageSize + 1;
  auto r = fs.passthrough ? fs.passthrough->charged(pages, set) : set();
  if (!r) return reply_error(req, r.error(), "setxattr", ino);
  reply_ok(req);
}

void getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  shm::Store& store = filesystem_of(req).store;
  reply_sized(
      req, size,
      [&](std::span<char> out) { return store.getxattr(ino, name, std::as_writable_bytes(out)); },
      "getxattr", ino);
}

void listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  shm::Store& store = filesystem_of(req).store;
  reply_sized(req, size, [&](std::span<char> out) { return store.listxattr(ino, out); },
              "listxattr", ino);
}

void removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  Filesystem& fs = filesystem_of(req);
  auto r = fs.store.removexattr(ino, name, request_of(req));
  if (!r) return reply_error(req, r.error(), "removexattr", ino);
  if (fs.passthrough) fs.passthrough->settle_store_pages();
  reply_ok(req);
}

}  // namespace hostchanfs::fs::ops
