// Extended attributes: getxattr, setxattr, listxattr, removexattr. An inode's xattrs are
// one blob in its data pages (shm/xattr_blob.hpp), charged to the quota in whole pages
// per inode (Quota::recharge_xattrs). A change rewrites the blob from the entry it changes
// on, in one tx: the bytes it overwrites are undo-logged (Tx::write_file), bytes beyond
// the old length need no undo (nothing reads past the length), pages the blob no longer
// needs go back at commit. So a change needs no page beyond what the new blob takes, and
// a full quota never stops a change that frees or keeps space.
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <optional>
#include <vector>

#include "shm/acl.hpp"
#include "shm/store_impl.hpp"
#include "shm/xattr_blob.hpp"

namespace hostchanfs::shm {

namespace {

enum class XattrNs { kUser, kTrusted, kSecurity, kAcl, kUnsupported };

XattrNs xattr_ns(std::string_view name) {
  if (name.starts_with("user.")) return XattrNs::kUser;
  if (name == acl::kAccessName || name == acl::kDefaultName) return XattrNs::kAcl;
  if (name.starts_with("trusted.")) return XattrNs::kTrusted;
  if (name.starts_with("security.")) return XattrNs::kSecurity;
  return XattrNs::kUnsupported;
}

// The checks of a call that names an xattr.
Result<XattrNs> check_xattr_name(std::string_view name) {
  if (name.size() > kXattrNameMax) return std::errc::result_out_of_range;
  XattrNs ns = xattr_ns(name);
  if (ns == XattrNs::kUnsupported) return std::errc::operation_not_supported;
  return ns;
}

bool pwrite_exact(int fd, const std::byte* src, std::size_t n, std::uint64_t at) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, src, n, static_cast<off_t>(at));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    src += w;
    n -= static_cast<std::size_t>(w);
    at += static_cast<std::uint64_t>(w);
  }
  return true;
}

}  // namespace

Result<void> Store::Impl::read_xattrs(Ino ino, const InodeRecord& r, std::vector<std::byte>& out) const {
  out.resize(r.xattr_len);
  if (r.xattr_len == 0) return success();
  thread_local std::vector<PageEntry> blob_pages;
  {
    std::shared_lock pm(page_map_lock);
    pages.collect(ino, rec::kXattrFork, 0, pages_for(r.xattr_len) - 1, blob_pages);
  }
  return data.read(blob_pages, 0, out);
}

Result<void> Store::Impl::rewrite_xattrs(Tx& tx, Ino ino, InodeRecord& r, std::size_t at,
                                         std::span<const std::byte> bytes, std::size_t new_len) {
  Store::Impl& s = *this;
  const std::size_t old_len = r.xattr_len;
  const std::uint64_t old_pages = pages_for(old_len), new_pages = pages_for(new_len);
  thread_local std::vector<PageEntry> blob;
  s.pages.collect(ino, rec::kXattrFork, 0, UINT64_MAX, blob);
  if (blob.size() != old_pages) persist::fatal("xattrs: the blob's pages do not match its length");
  for (std::uint64_t p = old_pages; p < new_pages; ++p) {
    auto page = s.data_pool.alloc(tx);
    if (!page) persist::fatal("setxattr: the data pool is empty though the quota had room");
    HC_TRYV(s.pages.insert(tx, ino, rec::kXattrFork, p, *page));
    blob.push_back({p, *page});
  }
  for (std::size_t pos = at; pos < at + bytes.size();) {
    const PageEntry& page = blob[pos / kPageSize];
    const std::size_t seg_end = std::min<std::size_t>(at + bytes.size(), (pos / kPageSize + 1) * kPageSize);
    // Below the old length: bytes in use, logged; at or beyond it: nobody reads them.
    const std::size_t logged_end = std::clamp(old_len, pos, seg_end);
    const std::uint64_t base = std::uint64_t{page.value} * kPageSize - page.index * kPageSize;
    const std::byte* src = bytes.data() + (pos - at);
    if (logged_end > pos && !tx.write_file(kDataFile, base + pos, src, logged_end - pos)) return last_errc();
    if (seg_end > logged_end && !pwrite_exact(s.data_fd.get(), src + (logged_end - pos), seg_end - logged_end, base + logged_end))
      return errno ? last_errc() : std::errc::io_error;
    pos = seg_end;
  }
  for (std::uint64_t p = new_pages; p < old_pages; ++p)
    if (auto gone = s.pages.erase(tx, ino, rec::kXattrFork, p)) s.data_pool.free(tx, *gone);
  if (new_len != old_len) tx.set(r.xattr_len, static_cast<std::uint32_t>(new_len));
  return success();
}

namespace {

// What a change does to an inode's blob: the bytes from `at` on become `bytes`, the blob
// `new_len` long, its charge `new_bytes`.
struct BlobEdit {
  std::size_t at = 0;
  std::span<const std::byte> bytes;
  std::size_t new_len = 0;
  std::uint64_t new_bytes = 0;
};

// `name` set to `value` in `blob` (where `found` is its entry, if any): in place when the
// size stays, else that entry and everything after it shifted; appended when new.
BlobEdit set_edit(const std::vector<std::byte>& blob, const std::optional<XattrEntry>& found, std::string_view name,
                  std::span<const std::byte> value, std::uint64_t charged, std::vector<std::byte>& scratch) {
  BlobEdit e;
  e.new_bytes = charged + xattr_cost(name.size(), value.size());
  if (found) e.new_bytes -= xattr_cost(name.size(), found->value.size());
  scratch.clear();
  XattrBlob::encode(scratch, name, value);
  e.at = blob.size();
  e.new_len = blob.size() + scratch.size();
  if (found) {
    e.at = found->offset;
    if (scratch.size() == found->size) {
      e.new_len = blob.size();
    } else {
      scratch.insert(scratch.end(), blob.begin() + static_cast<std::ptrdiff_t>(found->offset + found->size), blob.end());
      e.new_len = e.at + scratch.size();
    }
  }
  e.bytes = scratch;
  return e;
}

// The entry `found` out of `blob`: everything after it shifted down.
BlobEdit remove_edit(const std::vector<std::byte>& blob, const XattrEntry& found, std::uint64_t charged) {
  const std::size_t end = found.offset + found.size;
  return {found.offset, std::span(blob).subspan(end), blob.size() - found.size,
          charged - xattr_cost(found.name.size(), found.value.size())};
}

// A change of an inode's xattrs (and, for an access ACL, of its mode) and its charge, in
// one tx.
Result<void> change_xattrs(Store::Impl& s, Ino ino, InodeRecord& r, const BlobEdit& e, const Request& req,
                           Mutation op, std::optional<mode_t> mode = std::nullopt) {
  std::unique_lock pm(s.page_map_lock);
  Tx tx(*s.region);
  HC_TRYV(s.quota.recharge_xattrs(tx, r.xattr_bytes, e.new_bytes));
  HC_TRYV(s.rewrite_xattrs(tx, ino, r, e.at, e.bytes, e.new_len));
  tx.set(r.xattr_bytes, e.new_bytes);
  if (mode && *mode != r.mode) tx.set_relaxed(r.mode, static_cast<std::uint32_t>(*mode));
  touch_c(tx, r, now());
  s.dedupe.record(tx, req, op, ino);
  tx.commit();
  return success();
}

// An inode's packed xattrs, read under the namespace lock and the inode's stripe (both
// shared), for `use` to look at; what `use` returns is the call's result.
template <class F>
Result<std::size_t> with_xattrs(Store::Impl& s, Ino ino, F&& use) {
  std::shared_lock lk(s.ns_mutex);
  HC_TRY(r, s.inodes.get(ino));
  std::shared_lock ilk(s.stripe(ino));
  thread_local std::vector<std::byte> blob;
  HC_TRYV(s.read_xattrs(ino, *r, blob));
  return use(XattrBlob(blob));
}

// Setting an ACL as tmpfs does (simple_set_acl). An access ACL sets the mode's permission
// bits, and is kept only when it says more than they do; `kill_sgid` (the kernel's
// FUSE_SETXATTR_ACL_KILL_SGID: a caller outside the file's group without CAP_FSETID)
// drops setgid with it. An empty ACL (a header alone) is none at all.
Result<void> set_acl(Store::Impl& s, Ino ino, InodeRecord& r, std::string_view name, std::span<const std::byte> value,
                     bool kill_sgid, const Request& req) {
  HC_TRYV(acl::validate(value));
  const bool access = name == acl::kAccessName;
  if (!access && !is_dir(r)) return acl::is_empty(value) ? Result<void>(success()) : std::errc::permission_denied;
  std::unique_lock ilk(s.stripe(ino));
  thread_local std::vector<std::byte> blob, bytes;
  HC_TRYV(s.read_xattrs(ino, r, blob));
  auto found = XattrBlob(blob).find(name);
  mode_t mode = r.mode;
  bool keep = !acl::is_empty(value);
  if (access) {
    if (keep) keep = acl::apply_to_mode(value, mode);
    if (kill_sgid) mode &= ~S_ISGID;
  }
  BlobEdit e{blob.size(), {}, blob.size(), r.xattr_bytes};
  if (keep) e = set_edit(blob, found, name, value, r.xattr_bytes, bytes);
  else if (found) e = remove_edit(blob, *found, r.xattr_bytes);
  if (e.new_len > kXattrBlobMax) return std::errc::no_space_on_device;
  return change_xattrs(s, ino, r, e, req, Mutation::kSetxattr, mode);
}

}  // namespace

Result<std::size_t> Store::getxattr(Ino ino, std::string_view name, std::span<std::byte> out) {
  HC_TRYV(check_xattr_name(name));
  return with_xattrs(*impl_, ino, [&](XattrBlob xattrs) -> Result<std::size_t> {
    auto found = xattrs.find(name);
    if (!found) return std::errc::no_message_available;  // ENODATA
    if (out.empty()) return found->value.size();
    if (out.size() < found->value.size()) return std::errc::result_out_of_range;
    std::copy(found->value.begin(), found->value.end(), out.begin());
    return found->value.size();
  });
}

Result<void> Store::setxattr(Ino ino, std::string_view name, std::span<const std::byte> value, int flags,
                             const Request& req, bool acl_kill_sgid) {
  if (name.empty()) return std::errc::invalid_argument;
  if (name.size() > kXattrNameMax) return std::errc::result_out_of_range;
  if (value.size() > kXattrValueMax) return std::errc::argument_list_too_long;
  if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) return std::errc::invalid_argument;
  HC_TRY(ns, check_xattr_name(name));
  auto& s = *impl_;
  if (s.replayed(req, Mutation::kSetxattr)) return success();
  std::shared_lock lk(s.ns_mutex);
  HC_TRY(r, s.inodes.get(ino));
  // As the VFS does for user.*: only regular files and directories carry them.
  if (ns == XattrNs::kUser && !is_reg(*r) && !is_dir(*r)) return std::errc::operation_not_permitted;
  if (ns == XattrNs::kAcl) {
    if (S_ISLNK(load_mode(*r))) return std::errc::operation_not_supported;
    return set_acl(s, ino, *r, name, value, acl_kill_sgid, req);
  }
  std::unique_lock ilk(s.stripe(ino));
  thread_local std::vector<std::byte> blob, bytes;
  HC_TRYV(s.read_xattrs(ino, *r, blob));
  auto found = XattrBlob(blob).find(name);
  if (found && (flags & XATTR_CREATE)) return std::errc::file_exists;
  if (!found && (flags & XATTR_REPLACE)) return std::errc::no_message_available;
  const BlobEdit e = set_edit(blob, found, name, value, r->xattr_bytes, bytes);
  if (e.new_len > kXattrBlobMax) return std::errc::no_space_on_device;
  return change_xattrs(s, ino, *r, e, req, Mutation::kSetxattr);
}

Result<std::size_t> Store::listxattr(Ino ino, std::span<char> out) {
  return with_xattrs(*impl_, ino, [&](XattrBlob xattrs) -> Result<std::size_t> {
    std::size_t need = 0;
    xattrs.for_each([&](const XattrEntry& e) {
      need += e.name.size() + 1;
      return true;
    });
    if (out.empty()) return need;
    if (out.size() < need) return std::errc::result_out_of_range;
    std::size_t pos = 0;
    xattrs.for_each([&](const XattrEntry& e) {
      std::memcpy(out.data() + pos, e.name.data(), e.name.size());
      pos += e.name.size();
      out[pos++] = '\0';
      return true;
    });
    return need;
  });
}

// Removing an ACL that is not there succeeds, as on tmpfs (simple_set_acl with none),
// and changes ctime all the same.
Result<void> Store::removexattr(Ino ino, std::string_view name, const Request& req) {
  HC_TRY(ns, check_xattr_name(name));
  auto& s = *impl_;
  if (s.replayed(req, Mutation::kRemovexattr)) return success();
  std::shared_lock lk(s.ns_mutex);
  HC_TRY(r, s.inodes.get(ino));
  std::unique_lock ilk(s.stripe(ino));
  thread_local std::vector<std::byte> blob;
  HC_TRYV(s.read_xattrs(ino, *r, blob));
  auto found = XattrBlob(blob).find(name);
  if (!found && ns != XattrNs::kAcl) return std::errc::no_message_available;
  const BlobEdit e = found ? remove_edit(blob, *found, r->xattr_bytes) : BlobEdit{blob.size(), {}, blob.size(), r->xattr_bytes};
  return change_xattrs(s, ino, *r, e, req, Mutation::kRemovexattr);
}

}  // namespace hostchanfs::shm
