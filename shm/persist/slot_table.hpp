// SlotTable: a fixed table of fixed-size slots (inode records, directory entries with
// their names inline), handed out from a free stack kept beside the slots, with a
// high-water mark. Per slot the table also keeps a generation (bumped at every free, so
// that (slot, generation) is never reused) and a live bit; per slot page a count of live
// slots, so that memory returns at once when slots go: a group of kGroupPages slot pages
// whose slots are all free is punched, in one system call (each punch of a mapped page
// flushes the TLB of every CPU the process runs on; an rmdir run punched a page every 7
// rmdirs when it went a page at a time, every 37 in groups).
//
// Invariants (checked by Region::check):
//   top <= high_water <= capacity; live == the number of live slots; each slot below
//   high_water is either live or on the stack, never both, never twice; slots at or above
//   high_water are not live and have generation 0; page_live[p] counts the live slots of
//   slot page p, and a page with none in a group with none is a hole, except the spare
//   page: the one emptied last, left unpunched because the slot freed last is the next one
//   taken. (A group with live slots may keep its empty pages: at most the table's size,
//   which the region's budget counts whole.)
//
// Crash rules: the stack, the generations, the live bits and the counts change only
// inside a tx. A slot from alloc() is fresh for that tx (writes to it need no undo; a
// rollback leaves garbage in a slot that is free again, which nobody reads). free()
// takes effect at commit, so a slot freed in a tx is not handed out again by that tx.
//
// Volatile cells: `cells` 8-byte atomics per slot, in their own area, for counters that
// change outside any tx (the kernel's lookup count, open handles): a single aligned
// atomic store is all-or-nothing by itself. No tx may log them (Tx aborts), so no rollback
// can overwrite a concurrent increment. alloc() zeroes them; free them only when they are
// back at their idle value (the caller's rule: e.g. no lookups, no handles), because free
// does not touch them.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <utility>

#include "shm/persist/region.hpp"

namespace hostchanfs::shm::persist {

class Tx;
struct FreeStack;

class SlotTable {
 public:
  SlotTable(const Region& region, std::size_t index);

  std::optional<std::uint32_t> alloc(Tx& tx) const;
  // Free `slot` when `tx` commits (its generation is bumped then).
  void free(Tx& tx, std::uint32_t slot) const;

  bool live(std::uint32_t slot) const noexcept {
    return slot < d_->capacity && (gen_live_[slot] & 1);
  }
  std::uint64_t generation(std::uint32_t slot) const noexcept { return gen_live_[slot] >> 1; }
  std::byte* slot(std::uint32_t slot) const noexcept;
  template <class T>
  T& at(std::uint32_t s) const noexcept {
    static_assert(std::is_trivially_copyable_v<T>);
    return *reinterpret_cast<T*>(slot(s));
  }
  std::atomic<std::uint64_t>& cell(std::uint32_t slot, std::uint32_t i) const noexcept {
    return cells_[std::uint64_t{slot} * d_->cells + i];
  }

  static constexpr std::uint64_t kGroupPages = 16;  // 64 KiB
  // Has the group of slot page `page` no live slot?
  bool group_empty(std::uint64_t page) const noexcept;

  std::uint32_t capacity() const noexcept { return d_->capacity; }
  std::uint32_t slot_size() const noexcept { return d_->slot_size; }
  std::uint64_t live_count() const noexcept { return d_->live; }
  std::uint32_t high_water() const noexcept { return d_->high_water; }

 private:
  friend class Tx;
  friend class Region;
  void release(Tx& tx, std::uint32_t slot) const;
  // The slot pages [first, end) of the group of `page`.
  std::pair<std::uint64_t, std::uint64_t> group_of(std::uint64_t page) const noexcept;
  // At commit: punch the group of `page`, all of it but page `keep`.
  void punch_group(Tx& tx, std::uint64_t page, std::uint64_t keep) const;
  FreeStack stack() const noexcept;

  const Region* region_;
  std::size_t index_;
  TableDesc* d_;
  std::uint64_t* gen_live_;
  std::uint32_t* stack_;
  std::uint16_t* page_live_;
  std::atomic<std::uint64_t>* cells_;
};

}  // namespace hostchanfs::shm::persist
