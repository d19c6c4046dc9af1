// store_schema: the schema proposed for the store on this layer (issue 15), and the
// memory bound it gives. The records, keys and capacities here are what the integration
// adopts or adapts; budget_test keeps the bound true for every quota.
//
// What lives where:
//   table inodes    InodeRecord (256 B) per inode slot; short symlink targets (< 128
//                   bytes, as tmpfs) inline; 2 volatile cells: lookups, opens
//   table dirents   DirentRecord (280 B, 14 per page) per name, the name inline
//   table dedupe    DedupeRecord (64 B) per recent mutating request (a ring)
//   tree pages      (ino, fork, page index) -> data page (bit 31: unwritten); fork 0 is the
//                   file, 1 its xattr blob, 2 a long symlink target: all in data pages,
//                   charged to the quota, so none of them grows the meta region
//   tree dir.cookie (dir, cookie) -> dirent slot: readdir order, stable offsets
//   tree dir.name   (dir, hash64(name), slot), no value: lookup compares the slot's name
//   tree dedupe     request unique -> dedupe slot
//   pool data       the data memfd's quota pages
//
// The memory bound. Every part has a fixed capacity, so the meta memfd's size is the
// bound, and only pages in use cost memory. Worst case per unit (all slots used, every
// tree at its minimum fill, 255-byte names, one page per file at a high index, ...):
//   per inode slot:   256 + 8 (generation) + 4 (free stack) + 16 (cells) + 1/8 (page count)
//   per dirent slot:  4096/14 = 292.6 + 8 + 4 + 1/7
//   per tree entry:   4096 / (cap / 2) + inner nodes: 32.5 B (cap 255), 40.4 B (cap 203)
//   per quota page:   4 (data free stack) + 32.5 (page map entry) + arena stack
// giving, with I = max_inodes and Q = quota pages,
//   meta <= ~2.4 MiB + 655 * I + 36.6 * Q   bytes,
// which at the default density (I = max(1024, Q)) is 16.9% of the quota + 2.4 MiB, inside
// issue 15's 20% + 16 MiB (budget_test checks Region::size_for itself, for quotas from one
// page to 1 TiB).
#pragma once

#include <compare>
#include <cstdint>
#include <string_view>

#include "shm/persist/btree.hpp"
#include "shm/persist/page_pool.hpp"
#include "shm/persist/region.hpp"
#include "shm/persist/slot_table.hpp"

namespace hostchanfs::shm::persist::store {

inline constexpr std::uint64_t kLayoutVersion = 2;
inline constexpr std::uint64_t kDedupeSlots = 4096;
inline constexpr std::uint64_t kArenaSlack = 256;   // nodes: frees a tx holds until commit
inline constexpr std::uint64_t kLogBytes = 1 << 20;

// --- keys (4-byte fields: entries pack to 16 bytes, 255 per node) ---
struct PageKey {
  std::uint32_t ino, index_hi, index_lo;  // index: fork << 62 | page index (< 2^51)
  auto operator<=>(const PageKey&) const = default;
};
inline constexpr std::uint64_t kForkShift = 62;
inline PageKey page_key(std::uint32_t ino, std::uint64_t fork, std::uint64_t index) {
  std::uint64_t i = fork << kForkShift | index;
  return {ino, static_cast<std::uint32_t>(i >> 32), static_cast<std::uint32_t>(i)};
}
inline constexpr std::uint32_t kUnwritten = 0x80000000u;

struct DirCookieKey {
  std::uint32_t dir, cookie_hi, cookie_lo;
  auto operator<=>(const DirCookieKey&) const = default;
};
struct DirNameKey {
  std::uint32_t dir, hash_hi, hash_lo, slot;
  auto operator<=>(const DirNameKey&) const = default;
};

// --- records ---
struct InodeRecord {
  std::uint32_t mode, uid, gid, nlink;
  std::uint64_t rdev, size;
  std::uint64_t pages_held;   // quota pages in st_blocks: data, long symlink
  std::uint64_t xattr_bytes;  // the xattr blob (fork 1), charged in whole pages
  std::int64_t atime_s, mtime_s, ctime_s;
  std::uint32_t atime_ns, mtime_ns, ctime_ns;
  std::uint32_t flags;          // charge released, O_TMPFILE, ...
  std::uint64_t parent;         // directories: ".."
  std::uint64_t next_cookie;    // directories
  std::uint64_t create_unique;  // the request that made it (a resent create succeeds)
  std::uint32_t xattr_pages, symlink_len;
  std::uint64_t reserved;
  char inline_target[128];      // a symlink target shorter than 128 bytes
};
static_assert(sizeof(InodeRecord) == 256);
enum InodeCell : std::uint32_t { kLookups = 0, kOpens = 1 };

struct DirentRecord {
  std::uint64_t cookie;
  std::uint32_t dir, ino;
  std::uint16_t type;  // S_IFMT >> 12
  std::uint8_t name_len;
  char name[255];
};
static_assert(sizeof(DirentRecord) == 280);

struct DedupeRecord {
  std::uint64_t unique;      // the kernel's request id (bit 63 cleared)
  std::uint32_t opcode;
  std::int32_t error;        // 0 or the errno the reply carried
  std::uint64_t ino, generation;
  std::uint64_t value;       // e.g. bytes written
  std::uint64_t seq;         // ring order
  std::uint64_t reserved[2];
};
static_assert(sizeof(DedupeRecord) == 64);

// The superblock (user area): the store's own counters, changed in txs.
struct Superblock {
  std::uint64_t quota_pages, max_inodes;
  std::uint64_t pages_used, inodes_used;  // tmpfs's accounting
  std::uint64_t dedupe_seq;               // next ring position
  std::uint64_t reserved[11];
};

enum Table : std::size_t { kInodes = 0, kDirents = 1, kDedupe = 2 };
enum Tree : std::size_t { kPages = 0, kDirByCookie = 1, kDirByName = 2, kDedupeIndex = 3 };
inline constexpr std::size_t kDataPool = 1;

using PageTree = BTree<PageKey, std::uint32_t>;
using CookieTree = BTree<DirCookieKey, std::uint32_t>;
using NameTree = BTree<DirNameKey, Empty>;
using DedupeTree = BTree<std::uint64_t, std::uint32_t>;

std::uint64_t default_max_inodes(std::uint64_t quota_pages);
// The store's schema for a quota and an inode limit (pool `data` is extra file 1).
Schema schema(std::uint64_t quota_pages, std::uint64_t max_inodes);
// The meta memfd's size for them: the bound on metadata memory.
std::uint64_t meta_bytes(std::uint64_t quota_pages, std::uint64_t max_inodes);
// Issue 15's limit: 20% of the quota + 16 MiB.
constexpr std::uint64_t meta_limit(std::uint64_t quota_pages) {
  return quota_pages * kPage / 5 + (std::uint64_t{16} << 20);
}

// SipHash-2-4 of a name, keyed by the region's random seed: directory name keys that a
// client cannot make collide on purpose.
std::uint64_t name_hash(const Region& region, std::string_view name);
std::uint64_t siphash24(std::uint64_t k0, std::uint64_t k1, const void* data, std::size_t len);

}  // namespace hostchanfs::shm::persist::store
