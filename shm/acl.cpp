#include "shm/acl.hpp"

#include <sys/stat.h>

#include <bit>
#include <cstring>

namespace hostchanfs::shm::acl {

// The wire form is little-endian; so is every machine this runs on.
static_assert(std::endian::native == std::endian::little);

namespace {

std::size_t count_of(std::span<const std::byte> acl) { return (acl.size() - kHeaderSize) / kEntrySize; }

Entry entry_at(std::span<const std::byte> acl, std::size_t i) {
  Entry e;
  const std::byte* at = acl.data() + kHeaderSize + i * kEntrySize;
  std::memcpy(&e.tag, at, 2);
  std::memcpy(&e.perm, at + 2, 2);
  std::memcpy(&e.id, at + 4, 4);
  return e;
}

void set_perm(std::span<std::byte> acl, std::size_t i, std::uint16_t perm) {
  std::memcpy(acl.data() + kHeaderSize + i * kEntrySize + 2, &perm, 2);
}

// The entries a chmod or a create rewrites, by index (npos when absent).
struct Classes {
  static constexpr std::size_t npos = ~std::size_t{0};
  std::size_t user_obj = npos, group_obj = npos, mask = npos, other = npos;
  bool named = false;  // USER or GROUP entries
};
Classes classes_of(std::span<const std::byte> acl) {
  Classes c;
  for (std::size_t i = 0, n = count_of(acl); i < n; ++i) {
    switch (entry_at(acl, i).tag) {
      case kUserObj: c.user_obj = i; break;
      case kGroupObj: c.group_obj = i; break;
      case kMask: c.mask = i; break;
      case kOther: c.other = i; break;
      default: c.named = true; break;
    }
  }
  return c;
}

}  // namespace

void encode(std::span<const Entry> entries, std::span<std::byte> out) {
  std::memcpy(out.data(), &kVersion, sizeof kVersion);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    std::byte* at = out.data() + kHeaderSize + i * kEntrySize;
    std::memcpy(at, &entries[i].tag, 2);
    std::memcpy(at + 2, &entries[i].perm, 2);
    std::memcpy(at + 4, &entries[i].id, 4);
  }
}

// The kernel's order as a walk through states: USER_OBJ, then USERs, GROUP_OBJ, GROUPs,
// then MASK (needed after any named entry), then OTHER, last.
Result<void> validate(std::span<const std::byte> acl) {
  if (acl.size() < kHeaderSize) return std::errc::invalid_argument;
  std::uint32_t version = 0;
  std::memcpy(&version, acl.data(), sizeof version);
  if (version != kVersion) return std::errc::operation_not_supported;
  if ((acl.size() - kHeaderSize) % kEntrySize != 0) return std::errc::invalid_argument;
  enum { kWantUserObj, kInUsers, kInGroups, kWantOther, kDone } state = kWantUserObj;
  bool needs_mask = false;
  for (std::size_t i = 0, n = count_of(acl); i < n; ++i) {
    const Entry e = entry_at(acl, i);
    if (e.perm & ~kPermBits) return std::errc::invalid_argument;
    switch (e.tag) {
      case kUserObj:
        if (state != kWantUserObj) return std::errc::invalid_argument;
        state = kInUsers;
        break;
      case kUser:
      case kGroup:
        if (state != (e.tag == kUser ? kInUsers : kInGroups) || e.id == kUndefinedId)
          return std::errc::invalid_argument;
        needs_mask = true;
        break;
      case kGroupObj:
        if (state != kInUsers) return std::errc::invalid_argument;
        state = kInGroups;
        break;
      case kMask:
        if (state != kInGroups) return std::errc::invalid_argument;
        state = kWantOther;
        break;
      case kOther:
        if (state != kWantOther && !(state == kInGroups && !needs_mask)) return std::errc::invalid_argument;
        state = kDone;
        break;
      default:
        return std::errc::invalid_argument;
    }
  }
  if (count_of(acl) != 0 && state != kDone) return std::errc::invalid_argument;
  return success();
}

std::vector<std::byte> encoded(std::span<const Entry> entries) {
  std::vector<std::byte> out(encoded_size(entries.size()));
  encode(entries, out);
  return out;
}

bool apply_to_mode(std::span<const std::byte> acl, mode_t& mode) {
  const Classes c = classes_of(acl);
  auto perm = [&](std::size_t i) -> mode_t { return i == Classes::npos ? 0 : entry_at(acl, i).perm & kPermBits; };
  const mode_t group = perm(c.mask != Classes::npos ? c.mask : c.group_obj);
  mode = (mode & ~mode_t{S_IRWXU | S_IRWXG | S_IRWXO}) | (perm(c.user_obj) << 6) | (group << 3) | perm(c.other);
  return c.named || c.mask != Classes::npos;
}

void chmod(std::span<std::byte> acl, mode_t mode) {
  const Classes c = classes_of(acl);
  const std::size_t group = c.mask != Classes::npos ? c.mask : c.group_obj;
  if (c.user_obj != Classes::npos) set_perm(acl, c.user_obj, static_cast<std::uint16_t>((mode >> 6) & 07));
  if (group != Classes::npos) set_perm(acl, group, static_cast<std::uint16_t>((mode >> 3) & 07));
  if (c.other != Classes::npos) set_perm(acl, c.other, static_cast<std::uint16_t>(mode & 07));
}

// Each class entry keeps only what the mode allows, and the mode only what the entry
// allows (the group class through the mask when there is one).
bool create_masq(std::span<std::byte> acl, mode_t& mode) {
  const Classes c = classes_of(acl);
  mode_t bits = mode & (S_IRWXU | S_IRWXG | S_IRWXO);
  auto mask_both = [&](std::size_t i, int shift) {
    if (i == Classes::npos) return;
    const auto perm = static_cast<std::uint16_t>(entry_at(acl, i).perm & ((bits >> shift) & 07));
    set_perm(acl, i, perm);
    bits = (bits & ~(mode_t{07} << shift)) | (mode_t{perm} << shift);
  };
  mask_both(c.user_obj, 6);
  mask_both(c.mask != Classes::npos ? c.mask : c.group_obj, 3);
  mask_both(c.other, 0);
  mode = (mode & ~mode_t{S_IRWXU | S_IRWXG | S_IRWXO}) | bits;
  return c.named || c.mask != Classes::npos;
}

}  // namespace hostchanfs::shm::acl
