#include "shm/persist/slot_table.hpp"

#include <algorithm>
#include <string>

#include "shm/persist/free_stack.hpp"
#include "shm/persist/tx.hpp"

namespace hostchanfs::shm::persist {

SlotTable::SlotTable(const Region& region, std::size_t index)
    : region_(&region), index_(index), d_(&region.header().table[index]),
      gen_live_(reinterpret_cast<std::uint64_t*>(region.at(d_->gen_live_offset))),
      stack_(reinterpret_cast<std::uint32_t*>(region.at(d_->stack_offset))),
      page_live_(reinterpret_cast<std::uint16_t*>(region.at(d_->page_live_offset))),
      cells_(reinterpret_cast<std::atomic<std::uint64_t>*>(region.at(d_->cells_offset))) {
  if (index >= region.header().tables) fatal("no slot table " + std::to_string(index));
}

std::byte* SlotTable::slot(std::uint32_t s) const noexcept {
  return region_->at(d_->slots_offset + (s / d_->slots_per_page) * kPage +
                     (s % d_->slots_per_page) * std::uint64_t{d_->slot_size});
}

FreeStack SlotTable::stack() const noexcept {
  return FreeStack{stack_, d_->top, d_->high_water, d_->capacity, d_->name};
}

std::optional<std::uint32_t> SlotTable::alloc(Tx& tx) const {
  // A page with no live slot is a hole; if this tx rolls back it must be one again.
  auto taken = stack().take(tx, [&](std::uint32_t s) {
    std::uint64_t page = s / d_->slots_per_page;
    if (page_live_[page] == 0) tx.undo_punch(0, d_->slots_offset + page * kPage, kPage);
  });
  if (!taken) return std::nullopt;
  const std::uint32_t s = *taken;
  const std::uint64_t page = s / d_->slots_per_page;
  if (page == d_->spare_page) tx.set(d_->spare_page, kNoNode);  // in use again
  tx.set(page_live_[page], static_cast<std::uint16_t>(page_live_[page] + 1));
  tx.set(gen_live_[s], gen_live_[s] | 1);
  tx.set(d_->live, d_->live + 1);
  for (std::uint32_t i = 0; i < d_->cells; ++i) cell(s, i).store(0, std::memory_order_relaxed);
  tx.note_fresh(region_->offset_of(slot(s)), d_->slot_size);
  return s;
}

void SlotTable::free(Tx& tx, std::uint32_t s) const {
  if (!live(s)) fatal("free of slot " + std::to_string(s) + " of table " + d_->name + ", which is not live");
  tx.defer_slot_free(index_, s);
}

void SlotTable::release(Tx& tx, std::uint32_t s) const {
  if (!live(s)) fatal("slot " + std::to_string(s) + " of table " + d_->name + " freed twice in one tx");
  std::uint64_t page = s / d_->slots_per_page;
  tx.set(gen_live_[s], ((gen_live_[s] >> 1) + 1) << 1);
  stack().push(tx, s);
  tx.set(d_->live, d_->live - 1);
  tx.set(page_live_[page], static_cast<std::uint16_t>(page_live_[page] - 1));
  if (page_live_[page] != 0) return;
  // The page emptied last stays unpunched (the spare): the slot freed last, on top of the
  // stack, is the next one taken. Its group goes when it has no live slot left, all of it
  // but the spare in one punch; the spare before, if empty, with its group.
  const std::uint32_t old = d_->spare_page;
  tx.set(d_->spare_page, static_cast<std::uint32_t>(page));
  if (group_empty(page)) punch_group(tx, page, page);
  if (old != kNoNode && old != page && group_of(old) != group_of(page) && group_empty(old))
    tx.commit_punch(0, d_->slots_offset + old * kPage, kPage);
}

std::pair<std::uint64_t, std::uint64_t> SlotTable::group_of(std::uint64_t page) const noexcept {
  const std::uint64_t first = page / kGroupPages * kGroupPages;
  return {first, std::min<std::uint64_t>(first + kGroupPages, d_->pages)};
}

bool SlotTable::group_empty(std::uint64_t page) const noexcept {
  const auto [first, end] = group_of(page);
  for (std::uint64_t p = first; p < end; ++p)
    if (page_live_[p] != 0) return false;
  return true;
}

void SlotTable::punch_group(Tx& tx, std::uint64_t page, std::uint64_t keep) const {
  const auto [first, end] = group_of(page);
  auto punch = [&](std::uint64_t from, std::uint64_t to) {
    if (from < to) tx.commit_punch(0, d_->slots_offset + from * kPage, (to - from) * kPage);
  };
  if (keep < first || keep >= end) return punch(first, end);
  punch(first, keep);
  punch(keep + 1, end);
}

}  // namespace hostchanfs::shm::persist
