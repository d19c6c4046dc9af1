#include "shm/persist/page_pool.hpp"

#include <algorithm>
#include <iterator>
#include <string>

#include "shm/persist/free_stack.hpp"
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

FreeStack PagePool::stack() const noexcept {
  return FreeStack{stack_, d_->top, d_->high_water, d_->capacity, d_->name};
}

std::optional<std::uint32_t> PagePool::alloc(Tx& tx) const {
  // The undo punch goes first: whatever this tx writes into the page, a rollback leaves
  // it a hole, as every free page is.
  auto page = stack().take(tx, [&](std::uint32_t p) { tx.undo_punch(d_->file, file_offset(p), kPage); });
  if (!page) return page;
  for (auto& spare : d_->spares)  // in use now (a rollback makes it a hole again)
    if (spare == *page) tx.set(spare, kNoNode);
  if (d_->file == 0) tx.note_fresh(file_offset(*page), kPage);
  return page;
}

void PagePool::free(Tx& tx, std::uint32_t page) const {
  if (page >= d_->high_water)
    fatal("free of page " + std::to_string(page) + " of pool " + d_->name +
          ", beyond its high-water mark " + std::to_string(d_->high_water));
  tx.defer_pool_free(index_, page);
}

void PagePool::release(Tx& tx, std::uint32_t page) const {
  stack().push(tx, page);
  // In the region, the pages freed last stay unpunched (the spares): they are the next
  // ones taken, from the top of the stack. The oldest spare makes room, punched now.
  std::uint32_t punched = page;
  if (d_->file == 0) {
    auto* slot = std::find(std::begin(d_->spares), std::end(d_->spares), kNoNode);
    if (slot == std::end(d_->spares)) {
      slot = std::begin(d_->spares) + (page % kSpares);  // any: all are free pages
      punched = *slot;
    } else {
      punched = kNoNode;
    }
    tx.set(*slot, page);
  }
  if (punched != kNoNode) tx.commit_punch(d_->file, file_offset(punched), kPage);
}

bool PagePool::is_spare(std::uint32_t page) const noexcept {
  return std::find(std::begin(d_->spares), std::end(d_->spares), page) != std::end(d_->spares);
}

}  // namespace hostchanfs::shm::persist
