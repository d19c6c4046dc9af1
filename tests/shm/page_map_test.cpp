// PageMap and the data pool: which data page holds each page of a file, which pages are
// free, in which order freed pages come back, and that a freed page's memory goes back to
// the system when its tx commits.
#include <algorithm>
#include <vector>

#include "tests/shm/parts_fixture.hpp"

namespace hostchanfs::shm::testing {
namespace {

class PageMapTest : public PartsTest {
 protected:
  static constexpr Ino kFile = 2;
  // File page `index` of kFile = a page taken from the pool.
  void give(std::uint64_t index, std::uint32_t flags = 0) {
    in_tx([&](Tx& tx) {
      auto page = pool_.alloc(tx);
      ASSERT_TRUE(page);
      ASSERT_TRUE(pages_.insert(tx, kFile, rec::kFileFork, index, *page | flags));
    });
  }
  PageMap::Dropped drop(std::uint64_t from, std::uint64_t to, bool all = false) {
    PageMap::Dropped d;
    in_tx([&](Tx& tx) { d = pages_.drop(tx, kFile, all, from, to, 1000, pool_); });
    return d;
  }
  std::vector<std::uint64_t> indexes() {
    std::vector<PageEntry> out;
    pages_.collect(kFile, rec::kFileFork, 0, UINT64_MAX, out);
    std::vector<std::uint64_t> v;
    for (auto& e : out) v.push_back(e.index);
    return v;
  }
};

TEST_F(PageMapTest, AFreshPoolHandsOutPagesInAscendingOrderThenNone) {
  EXPECT_EQ(pool_.capacity(), kQuotaPages);
  for (std::uint32_t want = 0; want < kQuotaPages; ++want) EXPECT_EQ(take_page(), want);
  Tx tx(region_);
  EXPECT_FALSE(pool_.alloc(tx));  // the quota never lets a writer get here
}

// Dropped pages go back highest first, so the next file's pages ascend again and lie in
// runs (one pread/pwrite per run).
TEST_F(PageMapTest, DroppedPagesComeBackInAscendingOrder) {
  for (std::uint64_t index = 0; index < 6; ++index) give(index, index == 5 ? kUnwritten : 0);
  auto d = drop(0, rec::kNoWork);
  EXPECT_EQ(d.entries, 6u);
  EXPECT_EQ(d.charged, 6u);
  EXPECT_TRUE(d.done);
  EXPECT_TRUE(indexes().empty());
  for (std::uint32_t want = 0; want < 6; ++want) EXPECT_EQ(take_page(), want);
  EXPECT_EQ(take_page(), 6u);  // then the never-used ones
}

TEST_F(PageMapTest, DropRemovesOnlyTheRangeAsked) {
  for (std::uint64_t index : {0, 1, 4, 5, 9}) give(index);
  EXPECT_EQ(drop(1, 5).entries, 2u);  // 1 and 4; 5 is the end, not inside
  EXPECT_EQ(indexes(), std::vector<std::uint64_t>({0, 5, 9}));
  EXPECT_EQ(drop(6, 9).entries, 0u);  // nothing there
  EXPECT_EQ(drop(5, rec::kNoWork).entries, 2u);  // 5 and 9: to the end of the file
  EXPECT_EQ(indexes().size(), 1u);
}

TEST_F(PageMapTest, AllForksGoAndOnlyFileAndSymlinkPagesAreCharged) {
  give(0);
  in_tx([&](Tx& tx) {
    auto page = pool_.alloc(tx);
    ASSERT_TRUE(page && pages_.insert(tx, kFile, rec::kXattrFork, 0, *page));
  });
  auto d = drop(0, rec::kNoWork, true);
  EXPECT_EQ(d.entries, 2u);
  EXPECT_EQ(d.charged, 1u);
}

TEST_F(PageMapTest, FreeingPunchesThePagesOutOfTheMemfd) {
  std::vector<std::byte> page(kPageSize, std::byte{0x5a});
  for (std::uint64_t index = 0; index < 3; ++index) give(index);
  std::vector<PageEntry> all;
  pages_.collect(kFile, rec::kFileFork, 0, 2, all);
  iovec iov{page.data(), page.size()};
  for (std::uint64_t index = 0; index < 3; ++index)
    ASSERT_EQ(data_.write(all, index * kPageSize, (index + 1) * kPageSize, {&iov, 1}).bytes, kPageSize);
  const off_t region = static_cast<off_t>(3 * kPageSize);
  ASSERT_TRUE(holds_memory(data_.fd(), 0, region));
  drop(1, 2);
  EXPECT_TRUE(holds_memory(data_.fd(), 0, kPageSize));
  EXPECT_FALSE(holds_memory(data_.fd(), kPageSize, kPageSize));
  EXPECT_TRUE(holds_memory(data_.fd(), 2 * kPageSize, kPageSize));
  drop(0, rec::kNoWork);
  EXPECT_FALSE(holds_memory(data_.fd(), 0, region));
}

// A page taken in a tx that rolls back is free again, a hole, and the next one out.
TEST_F(PageMapTest, APageOfARolledBackTxIsTheNextOneTaken) {
  std::uint32_t page = 0;
  {
    Tx tx(region_);
    page = *pool_.alloc(tx);
    std::byte b{1};
    ASSERT_EQ(::pwrite(data_.fd(), &b, 1, static_cast<off_t>(page * kPageSize)), 1);
  }
  EXPECT_FALSE(holds_memory(data_.fd(), static_cast<off_t>(page * kPageSize), kPageSize));
  EXPECT_EQ(take_page(), page);
}

TEST_F(PageMapTest, SeekingDataAndHoles) {
  give(2);
  give(3, kUnwritten);
  give(4);
  EXPECT_EQ(pages_.next_data(kFile, 0), 2u);
  EXPECT_EQ(pages_.next_data(kFile, 3), 4u);  // unwritten: a hole
  EXPECT_EQ(pages_.next_data(kFile, 5), UINT64_MAX);
  EXPECT_EQ(pages_.next_hole(kFile, 0), 0u);
  EXPECT_EQ(pages_.next_hole(kFile, 2), 3u);
  EXPECT_EQ(pages_.count(kFile, rec::kFileFork, 0, 3), 2u);
  EXPECT_TRUE(pages_.any_from(kFile, rec::kFileFork, 4));
  EXPECT_FALSE(pages_.any_from(kFile, rec::kFileFork, 5));
}

}  // namespace
}  // namespace hostchanfs::shm::testing
