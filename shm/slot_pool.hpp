// SlotPool: numbers 0..capacity-1 handed out and taken back (data pages for the PagePool,
// inode slots for the InodeTable). A free list kept in the managed segment, never inside
// what it numbers, plus a high-water mark: numbers above it were never used (and cost no
// memory). Persistent: part of kLayoutVersion. Not locked: its owner locks it.
#pragma once

#include <cstdint>

#include <boost/interprocess/containers/vector.hpp>

#include "shm/segment.hpp"

namespace hostchanfs::shm {

struct SlotPool {
  SlotPool(std::uint64_t cap, const Alloc<std::uint32_t>& a) : capacity(cap), free(a) {
    free.reserve(cap);  // give() never allocates
  }
  // The last number given back, else the lowest never used; false when all are taken.
  bool take(std::uint32_t& slot) {
    if (!free.empty()) {
      slot = free.back();
      free.pop_back();
      return true;
    }
    if (high_water >= capacity) return false;
    slot = static_cast<std::uint32_t>(high_water++);
    return true;
  }
  void give(std::uint32_t slot) { free.push_back(slot); }

  std::uint64_t capacity;
  std::uint64_t high_water = 0;
  bip::vector<std::uint32_t, Alloc<std::uint32_t>> free;
};

}  // namespace hostchanfs::shm
