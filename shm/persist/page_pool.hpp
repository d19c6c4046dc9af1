// PagePool: 4 KiB pages handed out from a free stack kept in a fixed array (never inside
// the free pages), plus a high-water mark: pages at or above it were never used. Pool 0 of
// every region is its arena (B+tree nodes, in the region itself); pools 1.. are pages of
// extra files (the store's data memfd).
//
// Invariants (checked by Region::check):
//   top <= high_water <= capacity; the stack holds `top` distinct pages below high_water;
//   every page below high_water is either on the stack or in use by exactly one owner;
//   every free page (on the stack or at/above high_water) is a hole in its file, except,
//   in the region's own pool (the arena), the spares: the kSpares pages freed last, left
//   unpunched because they are the next ones taken (a tree that gains and loses a node
//   over and over would otherwise punch it and fault it back each time).
//
// Crash rules: the stack, top and high_water change only inside a tx. alloc() logs an
// undo punch before the page changes hands, so a rolled-back allocation leaves the page a
// hole again (whatever the tx wrote into it); free() takes effect at commit, after which
// the page is punched (memory returns at once). A page freed in a tx is not handed out
// again before that tx commits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "shm/persist/region.hpp"

namespace hostchanfs::shm::persist {

class Tx;
struct FreeStack;

class PagePool {
 public:
  PagePool(const Region& region, std::size_t index);

  // A free page, or nullopt when the pool is exhausted. Its bytes are zeros (a hole) and
  // fresh for this tx: writes to an arena page need no undo.
  std::optional<std::uint32_t> alloc(Tx& tx) const;
  // Give `page` back when `tx` commits.
  void free(Tx& tx, std::uint32_t page) const;

  // Byte offset of `page` in the pool's file; for the arena, its address too.
  std::uint64_t file_offset(std::uint32_t page) const noexcept { return d_->base + page * kPage; }
  std::byte* page(std::uint32_t page) const noexcept;
  std::uint32_t file() const noexcept { return d_->file; }

  std::uint32_t capacity() const noexcept { return d_->capacity; }
  std::uint32_t high_water() const noexcept { return d_->high_water; }
  std::uint32_t free_on_stack() const noexcept { return d_->top; }
  std::uint32_t in_use() const noexcept { return d_->high_water - d_->top; }
  std::uint32_t stack_entry(std::uint32_t i) const noexcept { return stack_[i]; }
  bool is_spare(std::uint32_t page) const noexcept;

 private:
  friend class Tx;
  // Commit's half of free(): push the page and schedule its punch.
  void release(Tx& tx, std::uint32_t page) const;
  FreeStack stack() const noexcept;

  const Region* region_;
  std::size_t index_;
  PoolDesc* d_;
  std::uint32_t* stack_;
};

}  // namespace hostchanfs::shm::persist
