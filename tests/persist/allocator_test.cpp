// The page pools and the slot tables: order of hand-out, frees that take effect at commit
// and punch the page (memory returns), rolled-back allocations that leave holes, pages and
// slots never handed out twice in one tx, generations, volatile cells.
#include <fcntl.h>
#include <unistd.h>

#include <set>

#include <gtest/gtest.h>

#include "tests/persist/fixture.hpp"

namespace hostchanfs::shm::persist::testing {
namespace {

bool holds_data(int fd, std::uint64_t offset) {
  off_t next = ::lseek(fd, static_cast<off_t>(offset), SEEK_DATA);
  return next >= 0 && static_cast<std::uint64_t>(next) < offset + kPage;
}

TEST(PagePool, HandsOutFromTheHighWaterMarkThenReusesFreedPagesLastFirst) {
  TestRegion r;
  PagePool data(r.region(), kData);
  std::vector<std::uint32_t> pages;
  {
    Tx tx(r.region());
    for (int i = 0; i < 4; ++i) pages.push_back(*data.alloc(tx));
    tx.commit();
  }
  EXPECT_EQ(pages, (std::vector<std::uint32_t>{0, 1, 2, 3}));
  EXPECT_EQ(data.high_water(), 4u);
  {
    Tx tx(r.region());
    data.free(tx, 1);
    data.free(tx, 3);
    EXPECT_EQ(data.free_on_stack(), 0u) << "a free takes effect at commit";
    tx.commit();
  }
  EXPECT_EQ(data.free_on_stack(), 2u);
  EXPECT_EQ(data.in_use(), 2u);
  Tx tx(r.region());
  EXPECT_EQ(*data.alloc(tx), 3u);
  EXPECT_EQ(*data.alloc(tx), 1u);
  EXPECT_EQ(*data.alloc(tx), 4u);
  tx.abort();
}

TEST(PagePool, AFreedPageIsPunchedAtCommit) {
  TestRegion r;
  PagePool data(r.region(), kData);
  std::uint32_t page = alloc_committed(r.region(), data);
  write_tag(r.region(), page, 77);
  ASSERT_TRUE(holds_data(r.data_fd(), page * kPage));
  Tx tx(r.region());
  data.free(tx, page);
  EXPECT_TRUE(holds_data(r.data_fd(), page * kPage)) << "not before the commit: it may roll back";
  tx.commit();
  EXPECT_FALSE(holds_data(r.data_fd(), page * kPage));
}

TEST(PagePool, ARolledBackAllocationLeavesAHole) {
  TestRegion r;
  PagePool data(r.region(), kData), arena(r.region(), 0);
  {
    Tx tx(r.region());
    auto d = data.alloc(tx);
    auto a = arena.alloc(tx);
    write_tag(r.region(), *d, 1);
    std::vector<std::byte> ones(kPage, std::byte{1});
    tx.fresh(arena.page(*a), ones.data(), ones.size());
    ASSERT_TRUE(holds_data(r.data_fd(), *d * kPage));
  }
  EXPECT_EQ(data.high_water(), 0u);
  EXPECT_EQ(arena.high_water(), 0u);
  auto deep = r->check(CheckLevel::kDeep);
  EXPECT_TRUE(deep) << deep.error().what;
}

TEST(PagePool, APageFreedInATxIsNotHandedOutAgainByIt) {
  TestRegion r;
  PagePool data(r.region(), kData);
  FileTree files(r.region(), kFiles);
  {
    Tx tx(r.region());
    auto p = data.alloc(tx);
    ASSERT_TRUE(files.insert(tx, 1, *p));
    tx.commit();
  }
  Tx tx(r.region());
  data.free(tx, *files.erase(tx, 1));
  EXPECT_EQ(*data.alloc(tx), 1u);  // not page 0, which the rollback must find as it was
  tx.abort();
  EXPECT_EQ(files.find(1), std::optional<std::uint32_t>(0));
  EXPECT_TRUE(r->check(CheckLevel::kDeep));
}

// `capacity` allocations succeed, the next says there is nothing left; a rollback gives
// them all back.
template <class Allocator>
void expect_exhausted_after(Region& r, const Allocator& a, int capacity) {
  Tx tx(r);
  for (int i = 0; i < capacity; ++i) EXPECT_TRUE(a.alloc(tx));
  EXPECT_FALSE(a.alloc(tx));
  tx.abort();
  EXPECT_EQ(a.high_water(), 0u);
}

TEST(PagePool, AnExhaustedPoolSaysSo) {
  TestOptions o;
  o.data_pages = 3;
  TestRegion r(o);
  expect_exhausted_after(r.region(), PagePool(r.region(), kData), 3);
}

TEST(SlotTable, SlotsHaveGenerationsAndLiveBits) {
  TestRegion r;
  SlotTable names(r.region(), kNames);
  std::uint32_t a = 0, b = 0;
  {
    Tx tx(r.region());
    a = *names.alloc(tx);
    b = *names.alloc(tx);
    tx.commit();
  }
  EXPECT_EQ(a, 0u);
  EXPECT_EQ(b, 1u);
  EXPECT_TRUE(names.live(a));
  EXPECT_EQ(names.generation(a), 0u);
  EXPECT_EQ(names.live_count(), 2u);
  {
    Tx tx(r.region());
    names.free(tx, a);
    EXPECT_TRUE(names.live(a)) << "a free takes effect at commit";
    EXPECT_EQ(*names.alloc(tx), 2u) << "not the slot this tx frees";
    tx.commit();
  }
  EXPECT_FALSE(names.live(a));
  EXPECT_EQ(names.generation(a), 1u);
  Tx tx(r.region());
  EXPECT_EQ(*names.alloc(tx), a);
  EXPECT_EQ(names.generation(a), 1u);
  tx.commit();
  EXPECT_TRUE(r->check());
}

TEST(SlotTable, VolatileCellsChangeOutsideTxsAndStartAtZero) {
  TestRegion r;
  SlotTable names(r.region(), kNames);
  std::uint32_t s = alloc_committed(r.region(), names);
  names.cell(s, 0).fetch_add(5);
  names.cell(s, 1).store(2);
  {
    Tx tx(r.region());  // a tx that rolls back does not touch the cells
    tx.set(names.at<NameSlot>(s).key, std::uint64_t{9});
  }
  EXPECT_EQ(names.cell(s, 0).load(), 5u);
  {
    Tx tx(r.region());
    names.free(tx, s);
    tx.commit();
  }
  Tx tx(r.region());
  ASSERT_EQ(*names.alloc(tx), s);
  EXPECT_EQ(names.cell(s, 0).load(), 0u);
  EXPECT_EQ(names.cell(s, 1).load(), 0u);
  tx.commit();
}

// Slot pages are punched a group at a time (SlotTable::kGroupPages), at the commit that
// frees the group's last live slot, all but the page emptied last (the spare: the slot
// freed last is the next one taken, and punching it would only fault it back); a
// rolled-back allocation in an empty page leaves the page a hole again.
TEST(SlotTable, AGroupOfSlotPagesWithNoLiveSlotIsAHoleButTheLastPage) {
  TestRegion r;
  SlotTable names(r.region(), kNames);
  const std::uint32_t per_page = kPage / sizeof(NameSlot);
  ASSERT_LE(3 * per_page, names.capacity());
  ASSERT_GE(SlotTable::kGroupPages, 3u);  // the three pages below are one group
  auto page_of = [&](std::uint32_t s) { return r->offset_of(names.slot(s)) / kPage * kPage; };
  std::vector<std::uint32_t> slots;
  {
    Tx tx(r.region());
    for (std::uint32_t i = 0; i < 2 * per_page + 1; ++i) {
      slots.push_back(*names.alloc(tx));
      NameSlot n{slots.back(), 1, {'x'}};
      tx.fresh(names.slot(slots.back()), &n, sizeof n);
    }
    tx.commit();
  }
  ASSERT_TRUE(holds_data(r.meta_fd(), page_of(slots[0])));
  auto free_slots = [&](std::uint32_t first, std::uint32_t count) {
    Tx tx(r.region());
    for (std::uint32_t i = first; i < first + count; ++i) names.free(tx, slots[i]);
    tx.commit();
  };
  free_slots(0, per_page);
  EXPECT_TRUE(holds_data(r.meta_fd(), page_of(slots[0])));  // the spare
  free_slots(per_page, per_page);
  EXPECT_TRUE(holds_data(r.meta_fd(), page_of(slots[0])));  // its group still has a live slot
  EXPECT_TRUE(holds_data(r.meta_fd(), page_of(slots[per_page])));
  auto deep = r->check(CheckLevel::kDeep);
  EXPECT_TRUE(deep) << deep.error().what;
  free_slots(2 * per_page, 1);  // the group's last live slot
  EXPECT_FALSE(holds_data(r.meta_fd(), page_of(slots[0])));
  EXPECT_FALSE(holds_data(r.meta_fd(), page_of(slots[per_page])));
  EXPECT_TRUE(holds_data(r.meta_fd(), page_of(slots[2 * per_page])));  // the spare
  {
    Tx tx(r.region());
    std::uint32_t s = *names.alloc(tx);
    NameSlot n{7, 1, {'y'}};
    tx.fresh(names.slot(s), &n, sizeof n);
    EXPECT_EQ(page_of(s), page_of(slots[2 * per_page]));  // the last freed first
    EXPECT_TRUE(holds_data(r.meta_fd(), page_of(s)));
  }
  EXPECT_FALSE(holds_data(r.meta_fd(), page_of(slots[2 * per_page])));  // rolled back: a hole
  deep = r->check(CheckLevel::kDeep);
  EXPECT_TRUE(deep) << deep.error().what;
}

TEST(SlotTable, AFullTableSaysSo) {
  TestOptions o;
  o.names = 5;
  TestRegion r(o);
  expect_exhausted_after(r.region(), SlotTable(r.region(), kNames), 5);
  EXPECT_EQ(SlotTable(r.region(), kNames).live_count(), 0u);
}

}  // namespace
}  // namespace hostchanfs::shm::persist::testing
