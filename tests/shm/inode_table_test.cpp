// InodeTable: slots and generations, the inode charge taken with a slot (and given back by
// a rollback), and the kernel's lookup counts, whose going below zero is logged with what
// they were before the store aborts. (The lifetime rule over it is the store's:
// names_test, calls_test.)
#include <sys/stat.h>

#include "tests/shm/parts_fixture.hpp"
#include "tests/shm/store_fixture.hpp"

namespace hostchanfs::shm::testing {
namespace {

class InodeTableTest : public PartsTest {
 protected:
  std::pair<Ino, InodeRecord*> new_file() {
    std::pair<Ino, InodeRecord*> made{};
    InodeRecord init = record(S_IFREG | 0644);
    init.uid = 5;
    init.gid = 6;
    in_tx([&](Tx& tx) { made = must(inodes_.allocate(tx, quota_, init)); });
    return made;
  }
  std::uint64_t inodes_used() { return quota_.usage(region_).inodes_used; }
};

TEST_F(InodeTableTest, SlotsBecomeInodeNumbersAfterTheRoot) {
  EXPECT_TRUE(inodes_.find(kRootIno));  // slot 0, made by format
  auto [a, ra] = new_file();
  auto [b, rb] = new_file();
  EXPECT_EQ(a, 2u);
  EXPECT_EQ(b, 3u);
  EXPECT_EQ(inodes_.find(a), ra);
  EXPECT_EQ(ra->uid, 5u);
  EXPECT_EQ(ra->nlink, 1u);
  EXPECT_EQ(inodes_used(), 3u);  // the root too
  Attr attr = inodes_.attr_of(a, *ra);
  EXPECT_EQ(attr.ino, a);
  EXPECT_EQ(attr.mode, S_IFREG | 0644u);
  EXPECT_EQ(attr.gid, 6u);
  (void)rb;
}

TEST_F(InodeTableTest, OnlyLiveSlotsAreFound) {
  EXPECT_EQ(inodes_.find(0), nullptr);
  EXPECT_EQ(inodes_.find(2), nullptr);               // never used
  EXPECT_EQ(inodes_.find(kMaxInodes + 2), nullptr);  // beyond the table
  EXPECT_TRUE(Fails(inodes_.get(2), ESTALE));
}

TEST_F(InodeTableTest, AFreedSlotComesBackWithTheNextGeneration) {
  auto [ino, r] = new_file();
  std::uint64_t generation = inodes_.generation(ino);
  in_tx([&](Tx& tx) {
    quota_.unreserve_inode(tx);
    inodes_.free(tx, ino);
  });
  EXPECT_EQ(inodes_.find(ino), nullptr);
  EXPECT_EQ(inodes_.find(ino, generation), nullptr);
  EXPECT_EQ(inodes_used(), 1u);
  auto [again, r2] = new_file();
  EXPECT_EQ(again, ino);
  EXPECT_EQ(inodes_.generation(again), generation + 1);
  EXPECT_EQ(inodes_.find(again, generation), nullptr);  // the old (ino, generation) is gone for good
  EXPECT_EQ(inodes_.find(again, generation + 1), r2);
  (void)r;
}

TEST_F(InodeTableTest, TheInodeLimitRunsOutAsEnospcAndARollbackGivesTheChargeBack) {
  for (std::uint64_t i = 1; i < kMaxInodes; ++i) new_file();
  {
    Tx tx(region_);
    EXPECT_TRUE(Fails(inodes_.allocate(tx, quota_, record(S_IFREG | 0644)), ENOSPC));
  }
  EXPECT_EQ(inodes_used(), kMaxInodes);  // the failed one charged nothing
  in_tx([&](Tx& tx) { quota_.unreserve_inode(tx); });
  {
    Tx tx(region_);
    EXPECT_TRUE(Ok(inodes_.allocate(tx, quota_, record(S_IFREG | 0644))));
  }  // rolled back
  EXPECT_EQ(inodes_used(), kMaxInodes - 1);
}

TEST_F(InodeTableTest, LookupsAreCountedOutsideTxsAndForgetSaysWhenTheyEnd) {
  auto [ino, r] = new_file();
  inodes_.add_lookup(ino);
  inodes_.add_lookup(ino);
  EXPECT_EQ(inodes_.lookups(ino), 2u);
  EXPECT_FALSE(inodes_.forget(ino, 1));
  EXPECT_TRUE(inodes_.forget(ino, 1));
  (void)r;
}

TEST_F(InodeTableTest, ForgettingMoreThanWasLookedUpIsLoggedThenAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto [ino, r] = new_file();
  inodes_.set_lookups(ino, 1);
  EXPECT_DEATH(inodes_.forget(ino, 3),
               "inode 2 \\(generation 0\\): the kernel forgot 3 lookups, the store counted 1");
  EXPECT_FALSE(inodes_.forget(ino, 0));  // unchanged in this process
  EXPECT_TRUE(inodes_.forget(ino, 1));
  (void)r;
}

}  // namespace
}  // namespace hostchanfs::shm::testing
