// store_schema: the store's records on this layer (issue 15), their keys and capacities,
// and the memory bound they give. shm/ is the code over them (shm/store.hpp has the map);
// budget_test keeps the bound true for every quota. Bump kLayoutVersion on any change.
//
// What lives where:
//   superblock      the quota's counters (changed in the same tx as what they count), the
//                   format's options, the write intents, the dedupe ring
//   table inodes    InodeRecord (256 B) per inode slot (ino = slot + 1); short symlink
//                   targets (< 128 bytes, as tmpfs) inline; 1 volatile cell: lookups
//   table dirents   DirentRecord (280 B, 14 per page) per name, the name inline
//   tree pages      (ino, fork, page index) -> data page (bit 31: unwritten); fork 0 is the
//                   file, 1 its xattr blob, 2 a long symlink target: all in data pages,
//                   charged to the quota, so none of them grows the meta region
//   tree dir.cookie (dir, cookie) -> dirent slot: readdir order, stable offsets
//   tree dir.name   (dir, hash64(name), slot), no value: lookup compares the slot's name
//   pool data       the data memfd's quota pages
//
// The memory bound. Every part has a fixed capacity, so the meta memfd's size is the
// bound, and only pages in use cost memory. Worst case per unit (all slots used, every
// tree at its minimum fill, 255-byte names, one page per file at a high index, ...):
//   per inode slot:   256 + 8 (generation) + 4 (free stack) + 8 (cell) + 1/8 (page count)
//   per dirent slot:  4096/14 = 292.6 + 8 + 4 + 1/7
//   per tree entry:   4096 / (cap / 2) + inner nodes: 32.5 B (cap 255), 40.4 B (cap 203)
//   per quota page:   4 (data free stack) + 32.5 (page map entry) + arena stack
// giving, with I = max_inodes and Q = quota pages,
//   meta <= ~2.6 MiB + 647 * I + 36.6 * Q   bytes,
// which at the default density (I = max(1024, Q)) is 16.7% of the quota + 2.6 MiB, inside
// issue 15's 20% + 16 MiB (budget_test checks Region::size_for itself, for quotas from one
// page to 1 TiB). An inode limit above what the bound allows is refused (inodes_allowed).
#pragma once

#include <compare>
#include <cstdint>
#include <string_view>

#include "shm/persist/btree.hpp"
#include "shm/persist/page_pool.hpp"
#include "shm/persist/region.hpp"
#include "shm/persist/slot_table.hpp"

namespace hostchanfs::shm::persist::store {

inline constexpr std::uint64_t kLayoutVersion = 3;
inline constexpr std::uint64_t kDedupeSlots = 4096;  // the ring of recent outcomes
inline constexpr std::uint64_t kIntents = 64;        // writes copying data at once, at most
inline constexpr std::uint64_t kIntentPages = 258;   // new pages one intent holds (1 MiB, unaligned)
inline constexpr std::uint64_t kArenaSlack = 256;    // nodes: frees a tx holds until commit
inline constexpr std::uint64_t kLogBytes = 1 << 20;
inline constexpr std::uint64_t kDefaultChunkPages = 4096;  // page-map entries one tx changes

// --- keys (4-byte fields: entries pack to 16 bytes, 255 per node) ---
struct PageKey {
  std::uint32_t ino, index_hi, index_lo;  // index: fork << 62 | page index (< 2^51)
  auto operator<=>(const PageKey&) const = default;
};
inline constexpr std::uint64_t kForkShift = 62;
enum Fork : std::uint64_t { kFileFork = 0, kXattrFork = 1, kSymlinkFork = 2 };
inline constexpr std::uint64_t kIndexMask = (std::uint64_t{1} << kForkShift) - 1;
inline PageKey page_key(std::uint32_t ino, std::uint64_t fork, std::uint64_t index) {
  std::uint64_t i = fork << kForkShift | index;
  return {ino, static_cast<std::uint32_t>(i >> 32), static_cast<std::uint32_t>(i)};
}
inline std::uint64_t key_fork(const PageKey& k) { return k.index_hi >> (kForkShift - 32); }
inline std::uint64_t key_index(const PageKey& k) {
  return (std::uint64_t{k.index_hi} << 32 | k.index_lo) & kIndexMask;
}
inline constexpr std::uint32_t kUnwritten = 0x80000000u;

struct DirCookieKey {
  std::uint32_t dir, cookie_hi, cookie_lo;
  auto operator<=>(const DirCookieKey&) const = default;
};
inline DirCookieKey cookie_key(std::uint32_t dir, std::uint64_t cookie) {
  return {dir, static_cast<std::uint32_t>(cookie >> 32), static_cast<std::uint32_t>(cookie)};
}
struct DirNameKey {
  std::uint32_t dir, hash_hi, hash_lo, slot;
  auto operator<=>(const DirNameKey&) const = default;
};
inline DirNameKey name_key(std::uint32_t dir, std::uint64_t hash, std::uint32_t slot) {
  return {dir, static_cast<std::uint32_t>(hash >> 32), static_cast<std::uint32_t>(hash), slot};
}

// --- records ---
// One inode. Which lock of the store guards each field is written in shm/store_impl.hpp
// (Store::Impl); every field changes only in a tx.
struct InodeRecord {
  std::uint32_t mode, uid, gid, nlink;
  std::uint64_t rdev, size;
  std::uint64_t pages_held;   // quota pages in st_blocks: file data, a long symlink's page
  std::uint64_t xattr_bytes;  // the xattrs' charge: name + value + 64 each, in whole pages
  std::int64_t atime_s, mtime_s, ctime_s;
  std::uint32_t atime_ns, mtime_ns, ctime_ns;
  std::uint32_t flags;        // InodeFlags
  std::uint32_t opens;        // open handles (logged: a resent RELEASE must not close twice)
  std::uint32_t xattr_len;    // bytes of the xattr blob (fork 1)
  std::uint64_t parent;       // directories: ".."
  std::uint64_t next_cookie;  // directories: the next entry's readdir cookie
  // Work on the page map spread over several txs, recorded by the first, finished by the
  // last (or by attach, after a death): pages [work_from, work_to) of fork 0 (every fork
  // with kTrimAll) are being dropped; with kFilling, the pages missing in [work_from,
  // work_to) are being added unwritten (fallocate; their quota is reserved already).
  // work_from == kNoWork: none.
  std::uint64_t work_from, work_to;
  char inline_target[128];    // a symlink target shorter than 128 bytes
};
static_assert(sizeof(InodeRecord) == 256);
enum InodeFlags : std::uint32_t {
  kChargeReleased = 1,  // no name and no handle left: its inode count went back
  kTrimAll = 2,         // the work drops every fork (the inode's pages are going back)
  kFilling = 4,         // the work adds pages (see work_from)
  kLinkable = 8,        // made by O_TMPFILE and never linked: link may give it a first name
};
inline constexpr std::uint64_t kNoWork = ~std::uint64_t{0};
enum InodeCell : std::uint32_t { kLookups = 0 };  // the kernel's lookup count

struct DirentRecord {
  std::uint64_t cookie;
  std::uint32_t dir, ino;
  std::uint16_t type;  // S_IFMT >> 12
  std::uint8_t name_len;
  char name[255];
};
static_assert(sizeof(DirentRecord) == 280);

// A write copying data into fresh pages outside the tx mutex: tx 1 takes the pages and
// records them here, the copy runs, tx 2 puts them in the page map and clears the intent.
// Attach gives back the pages of every intent it finds (the write never completed).
struct Intent {
  std::uint64_t ino;
  std::uint32_t count;  // 0: free
  std::uint32_t reserved;
  std::uint32_t pages[kIntentPages];
};

// What a mutating request did, for a resend of it (FUSE_NOTIFY_RESEND): its opcode (so a
// reused unique cannot match another kind of request), the inode it made or changed and
// that inode's generation, and a value (bytes written).
struct Outcome {
  std::uint32_t op;
  std::uint32_t reserved;
  std::uint64_t ino, generation, value;
};

// The superblock (user area): the store's own counters and logs, changed in txs.
struct Superblock {
  std::uint64_t quota_pages, max_inodes;
  std::uint64_t pages_used, inodes_used;  // tmpfs's accounting
  std::uint64_t dedupe_seq;               // requests recorded so far (the ring's head)
  std::uint64_t chunk_pages;              // page-map entries one tx drops or adds at most
  std::uint64_t reserved[10];
  Intent intents[kIntents];
  std::uint64_t dedupe_unique[kDedupeSlots];  // the ring: request ids (0: empty) ...
  Outcome dedupe[kDedupeSlots];               // ... and what they did
};

enum Table : std::size_t { kInodes = 0, kDirents = 1 };
enum Tree : std::size_t { kPages = 0, kDirByCookie = 1, kDirByName = 2 };
inline constexpr std::size_t kDataPool = 1;

using PageTree = BTree<PageKey, std::uint32_t>;
using CookieTree = BTree<DirCookieKey, std::uint32_t>;
using NameTree = BTree<DirNameKey, Empty>;

std::uint64_t default_max_inodes(std::uint64_t quota_pages);
// The store's schema for a quota and an inode limit (pool `data` is extra file 1).
Schema schema(std::uint64_t quota_pages, std::uint64_t max_inodes);
// The meta memfd's size for them: the bound on metadata memory.
std::uint64_t meta_bytes(std::uint64_t quota_pages, std::uint64_t max_inodes);
// Issue 15's limit: 20% of the quota + 16 MiB.
constexpr std::uint64_t meta_limit(std::uint64_t quota_pages) {
  return quota_pages * kPage / 5 + (std::uint64_t{16} << 20);
}
// The most inodes a quota may have with its meta region inside meta_limit.
std::uint64_t inodes_allowed(std::uint64_t quota_pages);

// SipHash-2-4 of a name, keyed by the region's random seed: directory name keys that a
// client cannot make collide on purpose.
std::uint64_t name_hash(const Region& region, std::string_view name);
std::uint64_t siphash24(std::uint64_t k0, std::uint64_t k1, const void* data, std::size_t len);

}  // namespace hostchanfs::shm::persist::store
