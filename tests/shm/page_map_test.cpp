// PagePool: which data pages are free, in which order they come back, and that a freed
// page's memory goes back to the system at once. SlotPool, the free list under it.
#include <algorithm>
#include <vector>

#include "tests/shm/parts_fixture.hpp"

namespace hostchanfs::shm::testing {
namespace {

using PagePoolTest = PartsTest;

TEST(SlotPool, HandsOutNeverUsedNumbersInOrderThenTheLastGivenBack) {
  HeapSegment segment;
  SlotPool pool(3, alloc_in<std::uint32_t>(segment.get()));
  std::uint32_t a = 9, b = 9, c = 9, d = 9;
  ASSERT_TRUE(pool.take(a));
  ASSERT_TRUE(pool.take(b));
  ASSERT_TRUE(pool.take(c));
  EXPECT_EQ(std::vector<std::uint32_t>({a, b, c}), std::vector<std::uint32_t>({0, 1, 2}));
  EXPECT_FALSE(pool.take(d));  // all three taken
  pool.give(0);
  pool.give(2);
  ASSERT_TRUE(pool.take(d));
  EXPECT_EQ(d, 2u);
  ASSERT_TRUE(pool.take(d));
  EXPECT_EQ(d, 0u);
  EXPECT_FALSE(pool.take(d));
  EXPECT_EQ(pool.high_water, 3u);
}

TEST_F(PagePoolTest, AFreshPoolHandsOutPagesInAscendingOrder) {
  EXPECT_EQ(pages_.capacity(), kQuotaPages);
  for (std::uint32_t want = 0; want < kQuotaPages; ++want) EXPECT_EQ(pages_.take(), want);
}

TEST_F(PagePoolTest, TakingMoreThanTheQuotaPaidForAborts) {
  for (std::uint64_t i = 0; i < kQuotaPages; ++i) pages_.take();
  EXPECT_DEATH(pages_.take(), "");
}

// Dropped pages go back highest first, so the next file's pages ascend again and lie in
// runs (one pread/pwrite per run).
TEST_F(PagePoolTest, DroppedPagesComeBackInAscendingOrder) {
  PageTable& pt = new_page_table();
  for (std::uint64_t index = 0; index < 6; ++index) pt.emplace(index, pages_.take());
  pt[5] |= kUnwritten;  // a fallocated page: its flag does not travel with the page
  EXPECT_EQ(pages_.drop(pt, 0), 6u);
  EXPECT_TRUE(pt.empty());
  for (std::uint32_t want = 0; want < 6; ++want) EXPECT_EQ(pages_.take(), want);
  EXPECT_EQ(pages_.take(), 6u);  // then the never-used ones
}

TEST_F(PagePoolTest, DropRemovesOnlyTheRangeAsked) {
  PageTable& pt = new_page_table();
  for (std::uint64_t index : {0, 1, 4, 5, 9}) pt.emplace(index, pages_.take());
  EXPECT_EQ(pages_.drop(pt, 1, 5), 2u);  // 1 and 4; 5 is the end, not inside
  std::vector<std::uint64_t> left;
  for (auto& [index, page] : pt) left.push_back(index);
  EXPECT_EQ(left, std::vector<std::uint64_t>({0, 5, 9}));
  EXPECT_EQ(pages_.drop(pt, 6, 9), 0u);  // nothing there
  EXPECT_EQ(pages_.drop(pt, 7, 7), 0u);  // an empty range
  EXPECT_EQ(pages_.drop(pt, 5), 2u);     // 5 and 9: to the end of the file
  EXPECT_EQ(pt.size(), 1u);
}

TEST_F(PagePoolTest, FreeingPunchesThePagesOutOfTheMemfd) {
  PageTable& pt = new_page_table();
  std::vector<std::byte> page(kPageSize, std::byte{0x5a});
  iovec iov{page.data(), page.size()};
  for (std::uint64_t index = 0; index < 3; ++index) pt.emplace(index, pages_.take());
  for (std::uint64_t index = 0; index < 3; ++index)
    ASSERT_EQ(data_.write(pt, index * kPageSize, (index + 1) * kPageSize, {&iov, 1}).bytes, kPageSize);
  const off_t region = static_cast<off_t>(3 * kPageSize);
  ASSERT_TRUE(holds_memory(data_.fd(), 0, region));
  pages_.drop(pt, 1, 2);
  EXPECT_TRUE(holds_memory(data_.fd(), 0, kPageSize));
  EXPECT_FALSE(holds_memory(data_.fd(), kPageSize, kPageSize));
  EXPECT_TRUE(holds_memory(data_.fd(), 2 * kPageSize, kPageSize));
  pages_.drop(pt, 0);
  EXPECT_FALSE(holds_memory(data_.fd(), 0, region));
}

// A page whose table entry could not be made goes back as it is, and is the next one out.
TEST_F(PagePoolTest, APutBackPageIsTheNextOneTaken) {
  std::uint32_t page = pages_.take();
  pages_.take();
  pages_.put_back(page);
  EXPECT_EQ(pages_.take(), page);
}

}  // namespace
}  // namespace hostchanfs::shm::testing
