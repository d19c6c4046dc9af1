// Tx: one all-or-nothing change of a Region, for a process that may die at any instruction.
//
//   Tx tx(region);                 // takes the region's tx mutex (process-local)
//   tx.set(hdr.count, hdr.count + 1);
//   tree.insert(tx, key, value);   // views take the tx
//   tx.commit();                   // or leave the scope: rolled back, in this process
//
// How a change is made (the undo protocol). For every write to [dst, dst + n):
//   1. unless the range is fresh (allocated in this tx) or was logged already in this tx:
//      append {offset, n, old bytes} to the log after its last record;
//      compiler barrier; state = records + 1 (one aligned 8-byte store); barrier
//   2. crash point "before"; the write itself; crash point "after"
// A record is counted only once it is complete, so a death at any instruction leaves the
// log describing exactly the writes that may have happened. Replaying the counted records
// backwards (the oldest pre-image last) restores the region as it was when the tx began.
//
// Commit:
//   1. the frees the tx asked for (pages, slots) are done now, logged like any write (a
//      page freed in a tx is never handed out again by the same tx: a rollback must find
//      it as it was), and each freed page gets a kCommitPunch record;
//   2. the commit point: state = 0 (no punches) or state |= kCommitted, one store;
//   3. with punches: each punch (fallocate PUNCH_HOLE: memory returns at once), then
//      state = 0. A death in 3 is finished by attach(): punching a free page is idempotent.
// Rollback (the destructor without commit, abort(), or attach() after a death): replay the
// records backwards, kBytes restoring old bytes, kUndoPunch punching pages this tx had
// allocated (they are free again and must read as zeros), then state = 0.
//
// An in-place write to an extra file (write_file) is logged the same way: its old bytes
// (read with pread) go into a kFileBytes record before the pwrite, and a rollback writes
// them back with pwrite.
//
// Crash points (crash_point.hpp) count: each write (logged or fresh, region or file), the commit point,
// each punch, each undo step, and the final state = 0 of a rollback or recovery.
//
// Costs: a logged write is a memcpy of the old bytes into the log plus two stores; a fresh
// write or a range already logged in this tx costs a lookup in process-local tables.
// No system call except the punches of freed pages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "shm/persist/region.hpp"

namespace hostchanfs::shm::persist {

class Tx {
 public:
  explicit Tx(Region& region);
  ~Tx();
  Tx(const Tx&) = delete;
  Tx& operator=(const Tx&) = delete;

  Region& region() const noexcept { return region_; }

  template <class T>
  void set(T& field, const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    write(&field, &value, sizeof(T));
  }
  // set() of a naturally aligned word that other threads load without the caller's locks
  // (std::atomic_ref, relaxed): logged like set(), then written by one atomic store.
  void set_relaxed(std::uint32_t& field, std::uint32_t value);
  void set_relaxed(std::uint64_t& field, std::uint64_t value);
  // dst = src (n bytes; src may be anywhere, also in the region, but not overlap dst).
  void write(void* dst, const void* src, std::size_t n);
  // memmove within the region: the destination range is logged.
  void move(void* dst, const void* src, std::size_t n);
  void zero(void* dst, std::size_t n);
  // A write to memory allocated in this tx (PagePool::alloc, SlotTable::alloc): never
  // logged. Aborts when [dst, dst + n) is not fresh (write() would log it instead).
  void fresh(void* dst, const void* src, std::size_t n);
  // Bytes [offset, offset + n) of extra file `file` (a pool's page in use, e.g. the data
  // memfd) = src, undo-logged like a region write: their old bytes go into the log first
  // (pread), and a rollback writes them back. The range must lie inside a pool of that
  // file. A page allocated in this tx needs no undo: write it with pwrite (a rollback
  // punches it). false with errno when the file cannot be read or written (nothing
  // changed then).
  bool write_file(std::uint32_t file, std::uint64_t offset, const void* src, std::size_t n);

  void commit();
  // Roll back now (the destructor does the same for a tx never committed).
  void abort();

  // Log bytes left for further changes (after what commit() itself will need).
  std::size_t log_room() const noexcept;
  // Log bytes this tx has used so far (0: it has changed nothing logged yet).
  std::size_t log_used() const noexcept;
  // Bytes a logged write of n bytes takes in the log.
  static constexpr std::size_t record_bytes(std::size_t n) {
    return sizeof(LogRecord) + static_cast<std::size_t>(round_to_8(n));
  }

  // --- for the allocators (PagePool, SlotTable) ---
  // [offset, offset + len) of the region was allocated by this tx: writes need no undo.
  void note_fresh(std::uint64_t offset, std::uint64_t len);
  bool is_fresh(std::uint64_t offset, std::uint64_t len) const noexcept;
  // On rollback, punch [offset, offset + len) of file `file` (an allocated page).
  void undo_punch(std::uint32_t file, std::uint64_t offset, std::uint64_t len);
  // Free pool page / table slot at commit (not before: the tx may still roll back).
  void defer_pool_free(std::size_t pool, std::uint32_t page);
  void defer_slot_free(std::size_t table, std::uint32_t slot);
  // At commit, after the commit point: punch [offset, offset + len) of file `file`.
  void commit_punch(std::uint32_t file, std::uint64_t offset, std::uint64_t len);

 private:
  friend class Region;
  // Before a write: log [offset, offset + n) unless fresh, volatile-checked, or logged.
  void prepare(std::uint64_t offset, std::size_t n);
  void before_word(void* field, std::size_t n);  // set_relaxed's log and crash point
  std::uint64_t offset_checked(const void* p, std::size_t n, const char* op) const;
  // false only for kFileBytes, when the old bytes cannot be read (nothing is logged then).
  bool append(RecordKind kind, std::uint32_t file, std::uint64_t target, std::uint32_t len,
              const void* payload);
  void publish_count();
  void finish();  // clear the process-local state and release the mutex

  Region& region_;
  Region::TxState& st_;
  std::unique_lock<std::mutex> lock_;
  bool done_ = false;
};

// The log machinery shared by Tx::abort and Region::recover: replay the log of `region`
// backwards (state without kCommitted) or run its commit punches (with), then clear it.
// Fails without changing anything when a record is malformed.
Checked<std::uint64_t> settle_log(Region& region);

}  // namespace hostchanfs::shm::persist
