// POSIX ACLs as kernel tmpfs keeps them: two xattrs, system.posix_acl_access and
// system.posix_acl_default, each in the kernel's wire form (struct posix_acl_xattr_header,
// version 2, then posix_acl_xattr_entry {le16 tag, le16 perm, le32 id} in the kernel's
// order: USER_OBJ, USER..., GROUP_OBJ, GROUP..., MASK, OTHER). The store keeps the bytes
// as the kernel sends them, so GETXATTR answers them unchanged; the kernel (FUSE_POSIX_ACL)
// enforces them itself from what GETXATTR returns.
//
// What the kernel's generic ACL code does for a filesystem, and FUSE leaves to the daemon:
//   set an access ACL   mode follows the ACL (posix_acl_update_mode); an ACL that says no
//                       more than the mode bits is kept as no xattr at all;
//   chmod               an access ACL follows the mode (posix_acl_chmod);
//   a new inode         under a directory with a default ACL, inherits it
//                       (posix_acl_create): its access ACL is the default masked by the
//                       mode asked for, a directory keeps the default as its own; without
//                       a default ACL the umask applies instead.
// These are pure functions on the wire bytes, edited in place: no allocation, so that the
// store can use them inside its transactions.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "sys/result.hpp"

namespace hostchanfs::shm::acl {

inline constexpr std::string_view kAccessName = "system.posix_acl_access";
inline constexpr std::string_view kDefaultName = "system.posix_acl_default";

inline constexpr std::uint32_t kVersion = 2;  // POSIX_ACL_XATTR_VERSION
inline constexpr std::size_t kHeaderSize = 4;
inline constexpr std::size_t kEntrySize = 8;
inline constexpr std::uint32_t kUndefinedId = 0xffffffff;

enum Tag : std::uint16_t {
  kUserObj = 0x01,
  kUser = 0x02,
  kGroupObj = 0x04,
  kGroup = 0x08,
  kMask = 0x10,
  kOther = 0x20,
};
inline constexpr std::uint16_t kPermBits = 07;  // ACL_READ | ACL_WRITE | ACL_EXECUTE

struct Entry {
  std::uint16_t tag = 0, perm = 0;
  std::uint32_t id = kUndefinedId;
};

// The bytes of an ACL of `entries`, in wire form, into `out` (encoded_size long), or as
// a vector of their own (for tests and callers that build one).
void encode(std::span<const Entry> entries, std::span<std::byte> out);
inline constexpr std::size_t encoded_size(std::size_t entries) { return kHeaderSize + entries * kEntrySize; }
std::vector<std::byte> encoded(std::span<const Entry> entries);

// An ACL the kernel would accept (posix_acl_from_xattr, then posix_acl_valid): EOPNOTSUPP
// for another version, EINVAL for a size that is not whole entries, an unknown tag or
// permission bit, or entries out of the kernel's order. A header with no entries is valid
// (the kernel reads it as "no ACL").
Result<void> validate(std::span<const std::byte> acl);
inline bool is_empty(std::span<const std::byte> acl) { return acl.size() <= kHeaderSize; }

// posix_acl_equiv_mode: the permission bits of `mode` (its other bits kept) become what
// `acl` (valid) grants the owner, the group class (the mask if any, else the owning
// group) and others; true when the ACL says more than those bits (named entries or a mask).
bool apply_to_mode(std::span<const std::byte> acl, mode_t& mode);

// posix_acl_chmod: the owner, group class and other entries of `acl` (valid) become the
// permission bits of `mode`.
void chmod(std::span<std::byte> acl, mode_t mode);

// posix_acl_create_masq: `acl` (a directory's default ACL, valid) becomes the access ACL
// of a new inode asked for with `mode`, each class masked by the mode, and `mode`'s
// permission bits masked by the ACL. True when the result says more than the mode bits
// (then it is stored; otherwise the new inode gets no access ACL).
bool create_masq(std::span<std::byte> acl, mode_t& mode);

}  // namespace hostchanfs::shm::acl
