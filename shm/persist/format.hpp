// format: the bytes of a persistent region, as every process that maps it sees them.
// Plain structs of fixed-width integers at fixed offsets; no pointers (all references are
// byte offsets into the region, page numbers of a pool, or slot indices), no process-local
// types, no locks. Bump kFormatVersion on any change here.
//
// A region is one memfd, mapped shared:
//
//   page 0            RegionHeader: magic, versions, geometry, and the state of every pool,
//                     table and tree (stack tops, high-water marks, roots, counts)
//   log               the undo log (LogHeader + records), log_bytes
//   user              the user's superblock (its own roots and counters), user_bytes
//   per pool          its free stack: u32[capacity]
//   per table         u64 gen_live[capacity] | u32 free stack[capacity] |
//                     u16 page_live[pages] | u64 cells[capacity * cells] | slot pages
//   arena             the node pool's 4 KiB pages (B+tree nodes)
//
// Every area starts on a page boundary. Only the areas a process touches cost memory
// (the memfd is sparse); free arena pages, free slot pages (those of a group of slot pages
// with no live slot: slot_table.hpp) and free pages of external pools are holes (punched),
// at every consistent state, except a few spare pages: the
// arena's kSpares freed last and each table's slot page emptied last, kept so that a
// workload that frees and takes pages over and over (create and unlink one file: two tree
// roots, an inode slot and an entry slot) does not punch them and fault them back each
// time (about 5 us each on a paravirtualized guest).
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace hostchanfs::shm::persist {

inline constexpr std::uint64_t kPage = 4096;
inline constexpr char kRegionMagic[8] = {'H', 'C', 'P', 'E', 'R', 'S', 'I', 'S'};
inline constexpr std::uint32_t kFormatVersion = 3;

inline constexpr std::size_t kMaxPools = 4;    // pool 0 is the arena
inline constexpr std::size_t kMaxTables = 8;
inline constexpr std::size_t kMaxTrees = 16;
inline constexpr std::size_t kNameLen = 24;    // names of pools, tables, trees (NUL-padded)

inline constexpr std::uint32_t kNoNode = 0xffffffffu;
inline constexpr std::size_t kSpares = 4;  // free arena pages left unpunched (see below)

constexpr std::uint64_t round_to_page(std::uint64_t v) { return (v + kPage - 1) / kPage * kPage; }
constexpr std::uint64_t round_to_8(std::uint64_t v) { return (v + 7) / 8 * 8; }

// A pool of 4 KiB pages in a file: the region's own arena (file 0) or another memfd the
// region is given at create/attach (file 1.. : the store's data pages).
struct PoolDesc {
  char name[kNameLen];
  std::uint32_t file;        // 0: this region; i >= 1: the i-th extra file
  std::uint32_t capacity;    // pages
  std::uint64_t base;        // byte offset of page 0 in the file
  std::uint64_t stack_offset;  // u32 free stack[capacity], in this region
  // state, changed only inside a tx
  std::uint32_t top;         // entries on the free stack
  std::uint32_t high_water;  // pages >= high_water were never used
  std::uint32_t spares[kSpares];  // free pages left unpunched (file 0 only), or kNoNode
};

// A table of fixed-size slots. Slots never straddle a page, so a page whose slots are all
// free can be punched.
struct TableDesc {
  char name[kNameLen];
  std::uint32_t slot_size;
  std::uint32_t capacity;
  std::uint32_t slots_per_page;
  std::uint32_t cells;             // volatile 8-byte cells per slot (see slot_table.hpp)
  std::uint64_t gen_live_offset;   // u64[capacity]: generation << 1 | live
  std::uint64_t stack_offset;      // u32[capacity]
  std::uint64_t page_live_offset;  // u16[pages]: live slots per slot page
  std::uint64_t cells_offset;      // u64[capacity * cells]
  std::uint64_t slots_offset;      // the slot pages
  std::uint64_t pages;
  // state, changed only inside a tx
  std::uint32_t top;
  std::uint32_t high_water;
  std::uint64_t live;
  std::uint32_t spare_page;  // a slot page without live slots left unpunched, or kNoNode
  std::uint32_t reserved;
};

// A B+tree over arena pages, with fixed-size keys and values.
struct TreeDesc {
  char name[kNameLen];
  std::uint16_t key_size, value_size;
  std::uint16_t leaf_cap, inner_cap;  // entries per leaf, children per inner node
  // state, changed only inside a tx
  std::uint32_t root;    // kNoNode: empty
  std::uint32_t height;  // levels; 0 when empty, 1 when the root is a leaf
  std::uint64_t count;   // entries
  std::uint64_t nodes;   // arena pages in use
};

struct RegionHeader {
  char magic[8];            // written last at format: a half-formatted region has none
  std::uint32_t version;    // kFormatVersion
  std::uint32_t header_size;
  std::uint64_t user_version;  // the user's own layout version
  std::uint64_t region_size;
  std::uint64_t log_offset, log_bytes;
  std::uint64_t user_offset, user_bytes;
  std::uint64_t arena_offset;
  std::uint64_t hash_seed[2];  // random at format: keys a hash of untrusted names
  std::uint32_t pools, tables, trees, files;
  PoolDesc pool[kMaxPools];
  TableDesc table[kMaxTables];
  TreeDesc tree[kMaxTrees];
};
static_assert(sizeof(RegionHeader) <= kPage);
static_assert(std::is_trivially_copyable_v<RegionHeader>);

// --- the undo log ----------------------------------------------------------------------
// LogHeader::state is the one word that decides what a region's state is:
//   0                       consistent; the records are garbage
//   n (bit 63 clear)        a tx is open with n records: roll it back (replay backwards)
//   n | kCommitted          a tx committed; its commit actions (punches) may be unfinished:
//                           run them again (they are idempotent), then clear
inline constexpr std::uint64_t kCommitted = std::uint64_t{1} << 63;

struct LogHeader {
  std::uint64_t state;
  std::uint64_t reserved[7];
};
inline constexpr std::uint64_t kLogHeaderSize = sizeof(LogHeader);

enum class RecordKind : std::uint16_t {
  kBytes = 1,        // undo: copy the payload back to [target, target + len) of the region
  kUndoPunch = 2,    // undo: punch [target, target + len) of file `file` (a rolled-back
                     // allocation: the page is free again and must be a hole)
  kCommitPunch = 3,  // on commit: punch [target, target + len) of file `file` (a freed page)
  kFileBytes = 4,    // undo: write the payload back to [target, target + len) of extra file
                     // `file` (Tx::write_file: an in-place change of a page in use)
};

struct LogRecord {
  std::uint64_t target;
  std::uint32_t len;
  RecordKind kind;
  std::uint16_t file;
  // kBytes, kFileBytes: len bytes of payload follow, padded to 8
};
static_assert(sizeof(LogRecord) == 16);

// --- B+tree nodes ----------------------------------------------------------------------
inline constexpr std::uint32_t kNodeMagic = 0x4e545048;  // "HPTN"

// A node's entries are the slots [start, start + count) of its payload (start + count is
// at most the tree's cap for the level): a removal near the front moves the front part
// up and raises start instead of moving everything behind it down (btree.hpp).
struct NodeHeader {
  std::uint32_t magic;
  std::uint16_t count;  // entries (leaf) or children (inner)
  std::uint16_t start;  // the slot of entry 0; beside count, so both change in one write
  std::uint8_t level;   // 0: leaf
  std::uint8_t tree;    // the tree's index, for the checker
  std::uint16_t reserved0;
  std::uint32_t reserved;
};
static_assert(sizeof(NodeHeader) == 16);
static_assert(offsetof(NodeHeader, start) == offsetof(NodeHeader, count) + sizeof(std::uint16_t));
inline constexpr std::size_t kNodePayload = kPage - sizeof(NodeHeader);

}  // namespace hostchanfs::shm::persist
