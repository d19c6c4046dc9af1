#include "shm/quota.hpp"

#include <algorithm>
#include <atomic>

#include "shm/tmpfs_rules.hpp"

namespace hostchanfs::shm {

std::uint64_t Quota::reserve_pages(Tx& tx, std::uint64_t want, bool partial) {
  const std::uint64_t used = sb_.pages_used;
  std::uint64_t avail = sb_.quota_pages - std::min(used, sb_.quota_pages);
  std::uint64_t take = partial ? std::min(want, avail) : (avail >= want ? want : 0);
  if (take) tx.set(sb_.pages_used, used + take);
  return take;
}

void Quota::unreserve_pages(Tx& tx, std::uint64_t n) {
  if (n) tx.set(sb_.pages_used, sb_.pages_used - n);
}

bool Quota::reserve_inode(Tx& tx) {
  if (sb_.inodes_used >= sb_.max_inodes) return false;
  tx.set(sb_.inodes_used, sb_.inodes_used + 1);
  return true;
}

void Quota::unreserve_inode(Tx& tx) { tx.set(sb_.inodes_used, sb_.inodes_used - 1); }

Result<void> Quota::recharge_xattrs(Tx& tx, std::uint64_t old_bytes, std::uint64_t new_bytes) {
  std::uint64_t old_pages = pages_for(old_bytes), new_pages = pages_for(new_bytes);
  if (new_pages > old_pages && !reserve_pages(tx, new_pages - old_pages, false))
    return std::errc::no_space_on_device;
  if (new_pages < old_pages) unreserve_pages(tx, old_pages - new_pages);
  return success();
}

Usage Quota::usage(persist::Region& region) const {
  Tx tx(region);  // no change: only the mutex, so no rollback is under way
  Usage u = usage_of(sb_);
  tx.commit();
  return u;
}

Usage Quota::usage_of(const persist::store::Superblock& sb) noexcept {
  auto load = [](const std::uint64_t& v) {
    return std::atomic_ref<std::uint64_t>(const_cast<std::uint64_t&>(v)).load(std::memory_order_relaxed);
  };
  Usage u;
  u.quota_pages = load(sb.quota_pages);
  u.max_inodes = load(sb.max_inodes);
  u.pages_used = std::min(load(sb.pages_used), u.quota_pages);
  u.inodes_used = std::min(load(sb.inodes_used), u.max_inodes);
  return u;
}

}  // namespace hostchanfs::shm
