// Extended attributes: getxattr, setxattr, listxattr, removexattr. Their bytes are charged
// to the quota in whole pages per inode (Quota::recharge_xattrs).
#include <sys/xattr.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "shm/store_impl.hpp"
#include "sys/scope_guard.hpp"

namespace hostchanfs::shm {

namespace {

enum class XattrNs { kUser, kTrusted, kSecurity, kUnsupported };

XattrNs xattr_ns(std::string_view name) {
  if (name.starts_with("user.")) return XattrNs::kUser;
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

XattrList::iterator find_xattr(XattrList& list, std::string_view name) {
  return std::find_if(list.begin(), list.end(),
                      [&](const XattrRec& x) { return view(x.name) == name; });
}

}  // namespace

Result<std::size_t> Store::getxattr(Ino ino, std::string_view name, std::span<std::byte> out) {
  HC_TRYV(check_xattr_name(name));
  std::shared_lock lk(impl_->ns_mutex);
  HC_TRY(r, impl_->inodes.get(ino));
  std::shared_lock ilk(impl_->stripe(ino));
  if (!r->xattrs) return std::errc::no_message_available;  // ENODATA
  auto it = find_xattr(*r->xattrs, name);
  if (it == r->xattrs->end()) return std::errc::no_message_available;
  if (out.empty()) return it->value.size();
  if (out.size() < it->value.size()) return std::errc::result_out_of_range;
  std::memcpy(out.data(), it->value.data(), it->value.size());
  return it->value.size();
}

Result<void> Store::setxattr(Ino ino, std::string_view name, std::span<const std::byte> value,
                             int flags) {
  if (name.empty()) return std::errc::invalid_argument;
  if (name.size() > kXattrNameMax) return std::errc::result_out_of_range;
  if (value.size() > kXattrValueMax) return std::errc::argument_list_too_long;
  if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) return std::errc::invalid_argument;
  HC_TRY(ns, check_xattr_name(name));
  auto& s = *impl_;
  std::shared_lock lk(s.ns_mutex);
  HC_TRY(r, s.inodes.get(ino));
  // As the VFS does for user.*: only regular files and directories carry them.
  if (ns == XattrNs::kUser && !is_reg(*r) && !is_dir(*r)) return std::errc::operation_not_permitted;
  std::unique_lock ilk(s.stripe(ino));
  std::string_view v(reinterpret_cast<const char*>(value.data()), value.size());
  try {
    if (!r->xattrs) r->xattrs = make_in<XattrList>(s.segment(), alloc_in<XattrRec>(s.segment()));
    auto& list = *r->xattrs;
    auto it = find_xattr(list, name);
    if (it != list.end() && (flags & XATTR_CREATE)) return std::errc::file_exists;
    if (it == list.end() && (flags & XATTR_REPLACE)) return std::errc::no_message_available;
    const std::uint64_t old_bytes = r->xattr_bytes;
    std::uint64_t bytes = old_bytes + xattr_cost(name.size(), value.size());
    if (it != list.end()) bytes -= xattr_cost(name.size(), it->value.size());
    HC_TRYV(s.quota.recharge_xattrs(old_bytes, bytes));
    r->xattr_bytes = bytes;
    ScopeGuard undo([&] {
      (void)s.quota.recharge_xattrs(bytes, old_bytes);  // only gives back
      r->xattr_bytes = old_bytes;
    });
    if (it != list.end()) {
      it->value.assign(v.data(), v.size());
    } else {
      list.emplace_back(name, v, alloc_in<char>(s.segment()));
    }
    undo.dismiss();
  } catch (const bip::bad_alloc&) {
    return std::errc::no_space_on_device;
  }
  touch_c(*r, now());
  return success();
}

Result<std::size_t> Store::listxattr(Ino ino, std::span<char> out) {
  std::shared_lock lk(impl_->ns_mutex);
  HC_TRY(r, impl_->inodes.get(ino));
  std::shared_lock ilk(impl_->stripe(ino));
  std::size_t need = 0;
  if (r->xattrs)
    for (const auto& x : *r->xattrs) need += x.name.size() + 1;
  if (out.empty()) return need;
  if (out.size() < need) return std::errc::result_out_of_range;
  std::size_t pos = 0;
  if (r->xattrs)
    for (const auto& x : *r->xattrs) {
      std::memcpy(out.data() + pos, x.name.data(), x.name.size());
      pos += x.name.size();
      out[pos++] = '\0';
    }
  return need;
}

Result<void> Store::removexattr(Ino ino, std::string_view name) {
  HC_TRYV(check_xattr_name(name));
  auto& s = *impl_;
  std::shared_lock lk(s.ns_mutex);
  HC_TRY(r, s.inodes.get(ino));
  std::unique_lock ilk(s.stripe(ino));
  if (!r->xattrs) return std::errc::no_message_available;
  auto& list = *r->xattrs;
  auto it = find_xattr(list, name);
  if (it == list.end()) return std::errc::no_message_available;
  std::uint64_t bytes = r->xattr_bytes - xattr_cost(it->name.size(), it->value.size());
  list.erase(it);
  (void)s.quota.recharge_xattrs(r->xattr_bytes, bytes);  // only gives back
  r->xattr_bytes = bytes;
  touch_c(*r, now());
  return success();
}

}  // namespace hostchanfs::shm
