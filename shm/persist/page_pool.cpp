#include "shm/persist/page_pool.hpp"

#include <string>

#include "shm/persist/tx.hpp"

namespace hostchanfs::shm::persist {

PagePool::PagePool(const Region& region, std::size_t index)
    : region_(&region), index_(index), d_(&region.header().pool[index]),
      stack_(reinterpret_cast<std::uint32_t*>(region.at(d_->stack_offset))) {
  if (index >= region.header().pools) fatal("no pool " + std::to_string(index));
}

std::byte* PagePool::page(std::uint32_t page) const noexcept {
  return d_->file == 0 ? region_->at(file_offset(page)) : nullptr;
}

std::optional<std::uint32_t> PagePool::alloc(Tx& tx) const {
  std::uint32_t page = 0;
  bool from_stack = d_->top > 0;
  if (from_stack) {
    page = stack_[d_->top - 1];
  } else if (d_->high_water < d_->capacity) {
    page = d_->high_water;
  } else {
    return std::nullopt;
  }
  // The undo punch goes first: whatever this tx writes into the page, a rollback leaves
  // it a hole, as every free page is.
  tx.undo_punch(d_->file, file_offset(page), kPage);
  if (from_stack) {
    tx.set(d_->top, d_->top - 1);
  } else {
    tx.set(d_->high_water, d_->high_water + 1);
  }
  if (d_->file == 0) tx.note_fresh(file_offset(page), kPage);
  return page;
}

void PagePool::free(Tx& tx, std::uint32_t page) const {
  if (page >= d_->high_water)
    fatal("free of page " + std::to_string(page) + " of pool " + d_->name +
          ", beyond its high-water mark " + std::to_string(d_->high_water));
  tx.defer_pool_free(index_, page);
}

void PagePool::release(Tx& tx, std::uint32_t page) const {
  if (d_->top >= d_->capacity) fatal(std::string("free stack of pool ") + d_->name + " overflows: a page freed twice");
  tx.set(stack_[d_->top], page);
  tx.set(d_->top, d_->top + 1);
  tx.commit_punch(d_->file, file_offset(page), kPage);
}

}  // namespace hostchanfs::shm::persist
