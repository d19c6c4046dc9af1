// Region: one memfd, mapped shared, holding metadata that survives the death of the process
// that changes it (SIGKILL at any instruction). The persistence layer under the store:
//
//   Region      the mapping, its geometry and catalog (format.hpp), format/attach,
//               recovery, the invariant checker
//   Tx          (tx.hpp) every change of the region, all-or-nothing, through an undo log
//   PagePool    (page_pool.hpp) 4 KiB pages from a free stack: the node arena, data pages
//   SlotTable   (slot_table.hpp) fixed-size slots from a free stack (inodes, entries)
//   BTree       (btree.hpp) B+trees over arena pages with fixed-size keys and values
//
// The model. A process may die at any instruction; stores it executed are in the memfd
// (no power-loss model: nothing is flushed, only the compiler's order matters). Every
// change goes through a Tx, which first appends the old bytes to the undo log; attach()
// replays an unfinished tx backwards, so a region is always seen at a tx boundary. No lock
// lives in the region: a successor never waits for a dead holder.
//
// Rules for the code that uses a region (the crash rules):
//  1. Change region bytes only through a Tx (tx.set/write/move/zero/fresh, or a view's
//     methods that take a Tx). A plain store is lost or, worse, half-undone by a rollback.
//  2. The one exception: volatile cells (SlotTable::cell), 8-byte atomics that no tx ever
//     logs (a tx that tries aborts loudly). A replay restores whole byte ranges, so any
//     other field changed outside a tx would be overwritten by a rollback of a tx that
//     logged its neighbourhood. Beyond the cells, only the layer itself writes outside
//     the undo protocol, and only where no undo is needed: the log's state word and its
//     records; punches of pages that are free when punched (a commit's freed pages after
//     its commit point, a rolled-back tx's allocations during the rollback); the cells of
//     a slot it hands out (zeroed); the header at create(), before the magic.
//  3. Readers do not take the tx mutex. The caller's own locks keep readers away from what
//     a tx changes, from its first write until commit() or the rollback returns (commit
//     also punches freed pages: a reader must not hold a pointer into a freed node).
//  4. One tx at a time per region (a process-local mutex, taken by the Tx constructor);
//     nesting on one thread aborts. One process at a time changes a region: the next
//     attaches only once the last is dead (the controller's restart guarantees it), so
//     nothing shared stands in for the mutex.
//  5. A tx is bounded by the log (Schema::log_bytes); one that would overflow aborts the
//     process loudly: a bug in the caller, who must chunk big operations (BTree::erase_range
//     stops after N entries, Tx::log_room says what is left).
//
// attach() refuses a region it cannot trust: a wrong magic or version, a schema that does
// not match the region's, geometry that does not add up, a log record out of bounds, or any
// broken invariant found by check() after recovery. The error names what is wrong.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "shm/persist/format.hpp"
#include "sys/mapping.hpp"
#include "sys/result.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::shm::persist {

// An error for people: the errno and one line that names what is wrong.
struct Fault {
  std::errc code;
  std::string what;
};
template <class T>
using Checked = outcome::result<T, Fault, outcome::policy::terminate>;

class Region;
class CheckContext;

// An impossible state or a caller's bug (a tx log overflow, a nested tx, a write outside
// the region): print what it was and abort. The region stays recoverable: the next attach
// rolls the open tx back.
[[noreturn]] void fatal(const std::string& what) noexcept;

// What a region holds. At create the capacities are taken from here; at attach they are
// read from the region and everything else (names, sizes, counts, files) must match.
struct PoolSpec {
  std::string name;
  std::uint32_t file = 1;      // the i-th extra file given to create/attach (1-based)
  std::uint64_t capacity = 0;  // pages
  std::uint64_t base = 0;      // byte offset of page 0 in that file
};
struct TableSpec {
  std::string name;
  std::uint32_t slot_size = 0;  // bytes, a multiple of 8, at most one page
  std::uint64_t capacity = 0;
  std::uint32_t cells = 0;      // volatile 8-byte cells per slot
};
using TreeCheck = void (*)(const Region&, std::size_t tree, CheckContext&);
struct TreeSpec {
  std::string name;
  std::uint16_t key_size = 0, value_size = 0;
  std::uint16_t leaf_cap = 0, inner_cap = 0;  // 0: as many as a node holds
  TreeCheck check = nullptr;                  // made by tree_spec<K, V>() in btree.hpp
};
struct Schema {
  std::uint64_t user_version = 0;   // the user's layout version; attach refuses another
  std::uint64_t user_bytes = 0;     // the user's superblock (roots, counters)
  std::uint64_t log_bytes = 1 << 20;
  std::uint64_t arena_nodes = 0;    // pool 0: B+tree nodes
  std::vector<PoolSpec> pools;      // pools 1..: pages of the extra files
  std::vector<TableSpec> tables;
  std::vector<TreeSpec> trees;
  // The user's own invariants, run by check() after the layer's own: it must claim
  // (CheckContext::use_page) every page of an extra-file pool that is in use.
  std::function<void(const Region&, CheckContext&)> check;
};

enum class CheckLevel {
  kFull,  // every invariant of the structures
  kDeep,  // also: every free page and every slot page without a live slot is a hole
};

// What check() is given to walk: every page of every pool must end up claimed exactly
// once, by its free stack or by its one owner.
class CheckContext {
 public:
  explicit CheckContext(const Region& region);
  const Region& region() const { return region_; }
  // Page `page` of pool `pool` is in use by `owner` (named in the message on a problem).
  void use_page(std::size_t pool, std::uint64_t page, std::string_view owner);
  // Record a problem; the first one is what check() reports.
  void fail(std::string what);
  bool ok() const { return problem_.empty(); }
  const std::string& problem() const { return problem_; }

 private:
  friend class Region;
  void free_page(std::size_t pool, std::uint64_t page);
  const Region& region_;
  std::vector<std::vector<bool>> used_, free_;
  std::string problem_;
};

class Region {
 public:
  // Format a fresh region into `fd` (sized here). `files` are the extra files (by fd,
  // borrowed: they must outlive the Region) that pools 1.. live in, already sized.
  static Checked<std::unique_ptr<Region>> create(UniqueFd fd, std::vector<int> files,
                                                 const Schema& schema);
  // Map a region formatted by create(), recover (finish or roll back the tx a dead
  // process left), and check it (CheckLevel::kFull).
  static Checked<std::unique_ptr<Region>> attach(UniqueFd fd, std::vector<int> files,
                                                 const Schema& schema);
  // The bytes a region of this schema takes (its memfd's size): the memory bound.
  static std::uint64_t size_for(const Schema& schema);

  ~Region();
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  Checked<void> check(CheckLevel level = CheckLevel::kFull) const;

  std::byte* base() const noexcept { return map_.data(); }
  std::uint64_t size() const noexcept { return map_.size(); }
  int fd() const noexcept { return fd_.get(); }
  // File i: 0 is this region, 1.. the extra files.
  int file(std::uint32_t i) const noexcept { return i == 0 ? fd_.get() : files_[i - 1]; }
  RegionHeader& header() const noexcept { return *reinterpret_cast<RegionHeader*>(base()); }
  const Schema& schema() const noexcept { return schema_; }

  std::byte* user() const noexcept { return base() + header().user_offset; }
  template <class T>
  T& user_as() const noexcept {
    static_assert(std::is_trivially_copyable_v<T>);
    return *reinterpret_cast<T*>(user());
  }
  std::byte* at(std::uint64_t offset) const noexcept { return base() + offset; }
  std::uint64_t offset_of(const void* p) const noexcept {
    return static_cast<std::uint64_t>(static_cast<const std::byte*>(p) - base());
  }
  // A random key made at format, for hashing names an attacker chooses.
  std::uint64_t hash_seed(int i) const noexcept { return header().hash_seed[i]; }

  // Transactions that rolled back (in this process) and records replayed by attach().
  struct Stats {
    std::uint64_t commits = 0, rollbacks = 0;
    std::uint64_t recovered_records = 0;  // at attach
    bool recovered_commit = false;        // attach finished a committed tx's punches
  };
  Stats stats() const;

 private:
  friend class Tx;
  friend class CheckContext;
  Region(UniqueFd fd, std::vector<int> files, Mapping map, Schema schema);
  static Checked<std::unique_ptr<Region>> map(UniqueFd fd, std::vector<int> files,
                                              std::uint64_t size, const Schema& schema);
  Checked<void> verify_geometry(const Schema& schema) const;
  void note_volatile_areas();
  Checked<void> recover();
  void check_pools(CheckContext& ctx) const;
  void check_tables(CheckContext& ctx) const;
  void check_holes(CheckContext& ctx) const;

  // Process-local tx state (never in the region): the tx mutex and the bookkeeping of the
  // open tx. Only the thread that holds `mutex` touches the rest.
  struct Range {
    std::uint64_t begin, end;
  };
  struct Deferred {
    std::uint8_t kind;  // 0: pool page, 1: table slot
    std::uint8_t index;
    std::uint32_t item;
  };
  struct Punch {
    std::uint32_t file;
    std::uint64_t offset, len;
  };
  struct TxState {
    std::mutex mutex;
    std::atomic<std::thread::id> owner{};
    std::uint64_t tail = kLogHeaderSize;  // where the next record goes, in the log
    std::uint64_t count = 0;              // records in the log
    std::uint64_t last_undo_punch = 0;    // offset of the last kUndoPunch record, or 0
    std::uint64_t commit_reserve = 0;     // log bytes promised to commit()'s own records
    std::vector<Range> fresh;             // allocated in this tx, sorted: no logging needed
    std::vector<Deferred> deferred;       // frees, done at commit
    std::vector<Punch> commit_punches;
    // Ranges logged in this tx, by offset (open addressing, tagged with the tx number so
    // that no clearing is needed): a range already logged is not logged again.
    struct Logged {
      std::uint64_t offset;
      std::uint32_t len;
      std::uint32_t tx;
    };
    std::vector<Logged> logged;
    std::uint32_t tx_number = 1;
    std::uint32_t logged_count = 0;
    // The first kRecent ranges a tx logs are kept here instead, searched in order: most
    // txs log fewer, and a few hot cache lines beat probes into the table, which is cold
    // when the thread comes back from a read() of the next request.
    static constexpr std::uint32_t kRecent = 32;
    std::uint32_t recent_count = 0;
    std::uint32_t recent_len[kRecent];
    std::uint64_t recent_offset[kRecent];
    Stats stats;
  };
  std::vector<Range> volatile_;  // cell areas: a tx that logs into one aborts

  UniqueFd fd_;
  std::vector<int> files_;
  Mapping map_;
  Schema schema_;
  std::unique_ptr<TxState> tx_;
};

}  // namespace hostchanfs::shm::persist
