// Quota: what the channel may use and what it uses, charged as tmpfs charges. Pages: file
// data in whole 4 KiB pages (holes are free), a long symlink's page, and xattr bytes in
// whole pages per inode (tmpfs charges those to inode space instead: the one documented
// difference). Inodes: one per file, directory, symlink or hard link, the root included.
//
// The counters live in the meta region's Header (so `ls` can read them without the
// daemon, see peek_usage); they are atomics, so a charge never needs a store lock. A
// reservation comes first and the resource second: whoever reserved gives back what it
// did not use.
#pragma once

#include <cstddef>
#include <cstdint>

#include "shm/layout.hpp"
#include "shm/store.hpp"

namespace hostchanfs::shm {

// Per-xattr bookkeeping charged with its name and value, so that many tiny xattrs cannot
// grow the segment past what the quota pays for.
inline constexpr std::uint64_t kXattrOverhead = 64;
inline constexpr std::uint64_t xattr_cost(std::size_t name_len, std::size_t value_len) {
  return name_len + value_len + kXattrOverhead;
}

class Quota {
 public:
  explicit Quota(Header& header) noexcept : h_(header) {}

  // Up to `want` pages when `partial` (a write takes what fits), else exactly `want` or
  // none (fallocate, a long symlink); how many were reserved.
  std::uint64_t reserve_pages(std::uint64_t want, bool partial);
  void unreserve_pages(std::uint64_t n);
  bool reserve_inode();
  void unreserve_inode();
  // An inode's xattrs now take `new_bytes` instead of `old_bytes`: charge or refund the
  // difference in whole pages. ENOSPC (and nothing charged) when the growth does not fit.
  Result<void> recharge_xattrs(std::uint64_t old_bytes, std::uint64_t new_bytes);

  Usage usage() const noexcept { return usage_of(h_); }
  std::uint64_t pages_used() const noexcept;
  std::uint64_t inodes_used() const noexcept;
  std::uint64_t quota_pages() const noexcept { return h_.quota_pages; }
  std::uint64_t max_inodes() const noexcept { return h_.max_inodes; }

  // What a header says is used (clamped to the limits), for statfs and for peek_usage.
  static Usage usage_of(const Header& h) noexcept;

 private:
  Header& h_;
};

}  // namespace hostchanfs::shm
