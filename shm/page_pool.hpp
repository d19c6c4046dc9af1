// PagePool: which pages of the data region are free. Pages are handed out one at a time
// to a writer that has already reserved them in the Quota, and come back in bulk (a
// truncate, a punched hole, a freed inode), punched out of the memfd at once so that the
// daemon's memory falls when files go. The free list lives in the meta region (a
// SlotPool), never in the pages themselves. Its lock is the innermost of the store.
//
// Freed pages go back highest first: the pool is a stack, so the next writes take them in
// ascending order, and a new file's pages follow each other in the data region (one
// pwrite/pread per run, not per page).
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "shm/data_region.hpp"
#include "shm/file_pages.hpp"
#include "shm/slot_pool.hpp"

namespace hostchanfs::shm {

class PagePool {
 public:
  PagePool(SlotPool& free_list, const DataRegion& data) noexcept : free_(free_list), data_(data) {}
  PagePool(const PagePool&) = delete;
  PagePool& operator=(const PagePool&) = delete;

  // A free page. The caller has reserved it in the Quota, so one exists: none is an
  // accounting bug, and the store aborts.
  std::uint32_t take();
  // A page taken but never written (its table entry could not be made): back as it is.
  void put_back(std::uint32_t page);
  // Remove the file pages [first, end) from `pt` and free their data pages; how many.
  // The Quota refund is the caller's (it reserved them).
  std::uint64_t drop(PageTable& pt, std::uint64_t first, std::uint64_t end = UINT64_MAX);

  std::uint64_t capacity() const noexcept { return free_.capacity; }

 private:
  // Punch `pages` out of the memfd, then put them on the free list, highest first.
  void free(std::vector<std::uint32_t>& pages);

  SlotPool& free_;
  const DataRegion& data_;
  std::mutex mutex_;  // the free list; innermost: taken under any other store lock
};

}  // namespace hostchanfs::shm
