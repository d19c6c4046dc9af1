// InodeTable: slots and generations, and the lifetime rule on InodeRec: the charge goes
// with the last name and handle, the slot with the kernel's last lookup; a lookup count
// that would go below zero is logged with what it was before the store aborts.
#include <sys/stat.h>

#include "tests/shm/parts_fixture.hpp"
#include "tests/shm/store_fixture.hpp"

namespace hostchanfs::shm::testing {
namespace {

class InodeTableTest : public PartsTest {
 protected:
  InodeTableTest() {
    root_.mode = S_IFDIR | 01777;
    root_.nlink = 2;
  }
  // A regular file as the store makes one: allocated, with a page table.
  std::pair<Ino, InodeRec*> new_file() {
    auto made = must(inodes_.allocate(S_IFREG | 0644, root_, Caller{5, 6, false}));
    made.second->pages = &new_page_table();
    return made;
  }
  // `n` data pages for `r`, charged to the quota as a write would.
  void give_data(InodeRec& r, std::uint64_t n) {
    ASSERT_EQ(quota_.reserve_pages(n, false), n);
    for (std::uint64_t i = 0; i < n; ++i) r.pages->emplace(i, pages_.take());
    r.pages_held += n;
  }
  InodeRec root_{};
};

TEST_F(InodeTableTest, SlotsBecomeInodeNumbersFromTwo) {
  auto [a, ra] = new_file();
  auto [b, rb] = new_file();
  EXPECT_EQ(a, 2u);
  EXPECT_EQ(b, 3u);
  EXPECT_EQ(inodes_.find(a), ra);
  EXPECT_EQ(ra->uid, 5u);
  EXPECT_EQ(ra->nlink, 1u);
  EXPECT_EQ(quota_.inodes_used(), 2u);
  Attr attr = inodes_.attr_of(a, *ra);
  EXPECT_EQ(attr.ino, a);
  EXPECT_EQ(attr.mode, S_IFREG | 0644u);
  EXPECT_EQ(attr.gid, 6u);
}

TEST_F(InodeTableTest, OnlyLiveSlotsAreFound) {
  EXPECT_EQ(inodes_.find(0), nullptr);
  EXPECT_EQ(inodes_.find(2), nullptr);               // never used
  EXPECT_EQ(inodes_.find(kMaxInodes + 2), nullptr);  // beyond the table
  EXPECT_TRUE(Fails(inodes_.get(2), ESTALE));
}

TEST_F(InodeTableTest, AFreedSlotComesBackWithTheNextGeneration) {
  auto [ino, r] = new_file();
  std::uint64_t generation = r->generation;
  r->nlink = 0;
  inodes_.free(ino, *r);
  EXPECT_EQ(inodes_.find(ino), nullptr);
  EXPECT_EQ(quota_.inodes_used(), 0u);
  auto [again, r2] = new_file();
  EXPECT_EQ(again, ino);
  EXPECT_EQ(r2->generation, generation + 1);
}

TEST_F(InodeTableTest, TheInodeLimitAndTheSlotsRunOutAsEnospc) {
  for (std::uint64_t i = 0; i < kMaxInodes; ++i) new_file();
  EXPECT_TRUE(Fails(inodes_.allocate(S_IFREG | 0644, root_, Caller{}), ENOSPC));
  EXPECT_EQ(quota_.inodes_used(), kMaxInodes);  // the failed one charged nothing
}

TEST_F(InodeTableTest, TheChargeGoesWithTheLastNameTheSlotWithTheLastLookup) {
  auto [ino, r] = new_file();
  give_data(*r, 3);
  r->lookups = 1;
  InodeTable::open(*r);
  r->nlink = 0;
  inodes_.settle(ino, *r);  // a handle is open: nothing goes
  EXPECT_EQ(quota_.pages_used(), 3u);
  EXPECT_TRUE(InodeTable::close(*r));  // the last handle of a nameless inode
  inodes_.settle(ino, *r);
  EXPECT_EQ(quota_.pages_used(), 0u);  // tmpfs's moment: the charge goes
  EXPECT_EQ(quota_.inodes_used(), 0u);
  EXPECT_EQ(inodes_.find(ino), r);     // the kernel still names it
  EXPECT_TRUE(InodeTable::forget(ino, *r, 1));
  inodes_.settle(ino, *r);
  EXPECT_EQ(inodes_.find(ino), nullptr);
  EXPECT_EQ(quota_.inodes_used(), 0u);  // not given back twice
}

TEST_F(InodeTableTest, AClosedHandleOfANamedInodeFreesNothing) {
  auto [ino, r] = new_file();
  InodeTable::open(*r);
  InodeTable::open(*r);
  EXPECT_FALSE(InodeTable::close(*r));  // not the last
  EXPECT_FALSE(InodeTable::close(*r));  // the last, but the file has a name
  inodes_.settle(ino, *r);
  EXPECT_EQ(inodes_.find(ino), r);
}

// Pages a nameless inode gains after its charge went (a write through a handle the kernel
// had not released yet) go back when the slot is freed.
TEST_F(InodeTableTest, PagesGainedAfterTheChargeWentGoBackWithTheSlot) {
  auto [ino, r] = new_file();
  r->lookups = 1;
  r->nlink = 0;
  inodes_.settle(ino, *r);
  give_data(*r, 2);
  EXPECT_EQ(quota_.pages_used(), 2u);
  InodeTable::forget(ino, *r, 1);
  inodes_.settle(ino, *r);
  EXPECT_EQ(quota_.pages_used(), 0u);
  EXPECT_EQ(pages_.take(), 0u);  // and the pool has them back, lowest first
}

TEST_F(InodeTableTest, DroppingPagesRefundsThem) {
  auto [ino, r] = new_file();
  give_data(*r, 4);
  inodes_.drop_pages(*r, 1, 3);
  EXPECT_EQ(r->pages_held, 2u);
  EXPECT_EQ(quota_.pages_used(), 2u);
  inodes_.drop_pages(*r, 0);
  EXPECT_EQ(r->pages_held, 0u);
  EXPECT_EQ(quota_.pages_used(), 0u);
  (void)ino;
}

TEST_F(InodeTableTest, ForgettingMoreThanWasLookedUpIsLoggedThenAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto [ino, r] = new_file();
  r->lookups = 1;
  EXPECT_DEATH(InodeTable::forget(ino, *r, 3),
               "inode 2 \\(generation 0\\): the kernel forgot 3 lookups, the store counted 1");
  EXPECT_FALSE(InodeTable::forget(ino, *r, 0));  // unchanged in this process
  EXPECT_TRUE(InodeTable::forget(ino, *r, 1));
}

}  // namespace
}  // namespace hostchanfs::shm::testing
