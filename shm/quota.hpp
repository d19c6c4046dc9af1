// Quota: what the channel may use and what it uses, charged as tmpfs charges. Pages: file
// data in whole 4 KiB pages (holes are free), a long symlink's page, and xattr bytes in
// whole pages per inode (tmpfs charges those to inode space instead: the one documented
// difference). Inodes: one per file, directory, symlink or hard link, the root included.
//
// The counters live in the meta region's superblock (so `ls` can read them without the
// daemon, see peek_usage) and change only in a tx: the same tx that allocates or frees
// what they count, so that they are exact after any crash. Txs are serialized (the tx
// mutex), so a charge needs no lock of its own; a reader takes the tx mutex too
// (usage(): it must not see a rollback's restore half-done).
#pragma once

#include <cstddef>
#include <cstdint>

#include "shm/persist/store_schema.hpp"
#include "shm/persist/tx.hpp"
#include "shm/store.hpp"

namespace hostchanfs::shm {

// Per-xattr bookkeeping charged with its name and value, so that many tiny xattrs cannot
// take more pages than the quota pays for (a blob entry's own header is 8 bytes).
inline constexpr std::uint64_t kXattrOverhead = 64;
inline constexpr std::uint64_t xattr_cost(std::size_t name_len, std::size_t value_len) {
  return name_len + value_len + kXattrOverhead;
}

class Quota {
 public:
  using Tx = persist::Tx;
  explicit Quota(persist::store::Superblock& sb) noexcept : sb_(sb) {}

  // Up to `want` pages when `partial` (a write takes what fits), else exactly `want` or
  // none (fallocate, a long symlink); how many were reserved.
  std::uint64_t reserve_pages(Tx& tx, std::uint64_t want, bool partial);
  void unreserve_pages(Tx& tx, std::uint64_t n);
  bool reserve_inode(Tx& tx);
  void unreserve_inode(Tx& tx);
  // An inode's xattrs now take `new_bytes` instead of `old_bytes`: charge or refund the
  // difference in whole pages. ENOSPC (and nothing charged) when the growth does not fit.
  Result<void> recharge_xattrs(Tx& tx, std::uint64_t old_bytes, std::uint64_t new_bytes);

  // The counters as of the last commit (takes the tx mutex of `region`).
  Usage usage(persist::Region& region) const;
  std::uint64_t quota_pages() const noexcept { return sb_.quota_pages; }
  std::uint64_t max_inodes() const noexcept { return sb_.max_inodes; }

  // What a superblock says is used (clamped to the limits), for statfs and for peek_usage
  // (which reads a region no tx of its process changes: atomic loads, no mutex).
  static Usage usage_of(const persist::store::Superblock& sb) noexcept;

 private:
  persist::store::Superblock& sb_;
};

}  // namespace hostchanfs::shm
