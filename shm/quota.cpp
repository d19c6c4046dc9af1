#include "shm/quota.hpp"

#include <algorithm>

#include "shm/tmpfs_rules.hpp"

namespace hostchanfs::shm {

std::uint64_t Quota::reserve_pages(std::uint64_t want, bool partial) {
  auto& used = h_.pages_used;
  std::uint64_t cur = used.load(std::memory_order_relaxed);
  for (;;) {
    std::uint64_t avail = h_.quota_pages - std::min(cur, h_.quota_pages);
    std::uint64_t take = partial ? std::min(want, avail) : (avail >= want ? want : 0);
    if (take == 0) return 0;
    if (used.compare_exchange_weak(cur, cur + take, std::memory_order_relaxed)) return take;
  }
}

void Quota::unreserve_pages(std::uint64_t n) {
  if (n) h_.pages_used.fetch_sub(n, std::memory_order_relaxed);
}

bool Quota::reserve_inode() {
  auto& used = h_.inodes_used;
  std::uint64_t cur = used.load(std::memory_order_relaxed);
  do {
    if (cur >= h_.max_inodes) return false;
  } while (!used.compare_exchange_weak(cur, cur + 1, std::memory_order_relaxed));
  return true;
}

void Quota::unreserve_inode() { h_.inodes_used.fetch_sub(1, std::memory_order_relaxed); }

Result<void> Quota::recharge_xattrs(std::uint64_t old_bytes, std::uint64_t new_bytes) {
  std::uint64_t old_pages = pages_for(old_bytes), new_pages = pages_for(new_bytes);
  if (new_pages > old_pages && !reserve_pages(new_pages - old_pages, false))
    return std::errc::no_space_on_device;
  if (new_pages < old_pages) unreserve_pages(old_pages - new_pages);
  return success();
}

std::uint64_t Quota::pages_used() const noexcept { return h_.pages_used.load(); }
std::uint64_t Quota::inodes_used() const noexcept { return h_.inodes_used.load(); }

Usage Quota::usage_of(const Header& h) noexcept {
  Usage u;
  u.pages_used = std::min(h.pages_used.load(), h.quota_pages);
  u.quota_pages = h.quota_pages;
  u.inodes_used = std::min(h.inodes_used.load(), h.max_inodes);
  u.max_inodes = h.max_inodes;
  return u;
}

}  // namespace hostchanfs::shm
