// FreeStack: the one hand-out discipline of PagePool and SlotTable. Items 0..capacity-1;
// free ones are on a stack kept in a fixed array (never inside the items), and items at or
// above the high-water mark were never used. Taking prefers the stack (last freed first),
// so the high-water mark, and the memory below it, grows only when nothing is free.
//
// Crash rules: top, high_water and the entries change only through the tx; take() lets its
// caller record what a rollback must undo beyond these words (an undo punch of the item's
// page) before they change.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "shm/persist/region.hpp"
#include "shm/persist/tx.hpp"

namespace hostchanfs::shm::persist {

struct FreeStack {
  std::uint32_t* entries;
  std::uint32_t& top;
  std::uint32_t& high_water;
  std::uint32_t capacity;
  const char* owner;  // for messages: the pool's or table's name

  // Take the next free item, or nullopt when there is none. `before(item)` runs first,
  // before any word changes: it logs what a rollback must undo beyond them.
  template <class Before>
  std::optional<std::uint32_t> take(Tx& tx, Before&& before) const {
    std::uint32_t item = 0;
    if (top > 0) {
      item = entries[top - 1];
    } else if (high_water < capacity) {
      item = high_water;
    } else {
      return std::nullopt;
    }
    before(item);
    if (top > 0) {
      tx.set(top, top - 1);
    } else {
      tx.set(high_water, high_water + 1);
    }
    return item;
  }
  void push(Tx& tx, std::uint32_t item) const {
    if (top >= capacity) fatal(std::string("free stack of ") + owner + " overflows: an item freed twice");
    tx.set(entries[top], item);
    tx.set(top, top + 1);
  }
};

}  // namespace hostchanfs::shm::persist
