// POSIX ACLs where they meet the other operations (shm/acl.hpp has the rules): a chmod
// rewrites the access ACL in its own tx (store_attrs.cpp), a new inode (a whiteout too,
// store_rename.cpp) inherits its parent's default ACL in the tx that makes it
// (store_create.cpp). Setting and removing them is store_xattrs.cpp's.
#include <sys/stat.h>

#include <vector>

#include "shm/acl.hpp"
#include "shm/store_impl.hpp"
#include "shm/xattr_blob.hpp"

namespace hostchanfs::shm {

namespace {

// Where `name`'s value lies in the blob, and the value: nullopt when the blob has none.
struct FoundAcl {
  std::size_t value_at = 0;
  std::span<const std::byte> value;
};
std::optional<FoundAcl> find_acl(std::span<const std::byte> blob, std::string_view name) {
  auto found = XattrBlob(blob).find(name);
  if (!found) return std::nullopt;
  return FoundAcl{found->offset + kXattrHeader + name.size(), found->value};
}

}  // namespace

Result<std::optional<std::size_t>> Store::Impl::plan_acl_chmod(Ino ino, const InodeRecord& r, mode_t mode,
                                                             std::vector<std::byte>& value) const {
  if (r.xattr_len == 0) return std::optional<std::size_t>{};
  thread_local std::vector<std::byte> blob;
  HC_TRYV(read_xattrs(ino, r, blob));
  auto found = find_acl(blob, acl::kAccessName);
  if (!found) return std::optional<std::size_t>{};
  value.assign(found->value.begin(), found->value.end());
  acl::chmod(value, mode);
  return std::optional<std::size_t>{found->value_at};
}

Result<std::uint64_t> Store::Impl::inherit_acls(Ino parent_ino, const InodeRecord& parent, mode_t& mode,
                                                mode_t umask, std::vector<std::byte>& blob) const {
  blob.clear();
  std::optional<FoundAcl> found;
  thread_local std::vector<std::byte> parent_blob, access;
  if (parent.xattr_len != 0) {  // the cheap test that spares nearly every create the rest
    HC_TRYV(read_xattrs(parent_ino, parent, parent_blob));
    found = find_acl(parent_blob, acl::kDefaultName);
  }
  if (!found || acl::is_empty(found->value)) {
    mode &= ~(umask & 0777);
    return std::uint64_t{0};
  }
  std::uint64_t charge = 0;
  access.assign(found->value.begin(), found->value.end());
  if (acl::create_masq(access, mode)) {
    XattrBlob::encode(blob, acl::kAccessName, access);
    charge += xattr_cost(acl::kAccessName.size(), access.size());
  }
  if (S_ISDIR(mode)) {
    XattrBlob::encode(blob, acl::kDefaultName, found->value);
    charge += xattr_cost(acl::kDefaultName.size(), found->value.size());
  }
  return charge;
}

Result<void> Store::Impl::add_inherited(Tx& tx, Ino ino, InodeRecord& r, std::span<const std::byte> blob,
                                        std::uint64_t charge) {
  if (blob.empty()) return success();
  HC_TRYV(quota.recharge_xattrs(tx, 0, charge));
  HC_TRYV(rewrite_xattrs(tx, ino, r, 0, blob, blob.size()));
  tx.set(r.xattr_bytes, charge);
  return success();
}

}  // namespace hostchanfs::shm
