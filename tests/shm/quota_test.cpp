// Quota: reserving pages (as much as fits, or all or nothing) and inodes against the
// limits, xattr bytes recharged in whole pages, in the tx that uses them (a rollback takes
// the charge back), and what statfs and `ls` read back.
#include "tests/shm/parts_fixture.hpp"
#include "tests/shm/store_fixture.hpp"

namespace hostchanfs::shm::testing {
namespace {

class QuotaPartTest : public PartsTest {
 protected:
  QuotaPartTest() {
    // 10 pages and 3 inodes, none used (the root's charge set aside for these tests).
    in_tx([&](Tx& tx) {
      tx.set(sb_.quota_pages, std::uint64_t{10});
      tx.set(sb_.max_inodes, std::uint64_t{3});
      tx.set(sb_.inodes_used, std::uint64_t{0});
    });
  }
  std::uint64_t reserve(std::uint64_t want, bool partial) {
    std::uint64_t got = 0;
    in_tx([&](Tx& tx) { got = quota_.reserve_pages(tx, want, partial); });
    return got;
  }
  void unreserve(std::uint64_t n) {
    in_tx([&](Tx& tx) { quota_.unreserve_pages(tx, n); });
  }
  bool reserve_inode() {
    bool ok = false;
    in_tx([&](Tx& tx) { ok = quota_.reserve_inode(tx); });
    return ok;
  }
  Result<void> recharge(std::uint64_t old_bytes, std::uint64_t new_bytes) {
    Tx tx(region_);
    auto r = quota_.recharge_xattrs(tx, old_bytes, new_bytes);
    if (r) tx.commit();
    return r;
  }
  Usage usage() { return quota_.usage(region_); }
};

TEST_F(QuotaPartTest, APartialReservationTakesWhatFits) {
  EXPECT_EQ(reserve(4, true), 4u);
  EXPECT_EQ(reserve(100, true), 6u);
  EXPECT_EQ(usage().pages_used, 10u);
  EXPECT_EQ(reserve(1, true), 0u);  // full
  unreserve(3);
  EXPECT_EQ(reserve(5, true), 3u);
}

TEST_F(QuotaPartTest, AWholeReservationIsAllOrNothing) {
  EXPECT_EQ(reserve(7, false), 7u);
  EXPECT_EQ(reserve(4, false), 0u);  // 3 left: none taken
  EXPECT_EQ(usage().pages_used, 7u);
  EXPECT_EQ(reserve(3, false), 3u);  // exactly what is left
  EXPECT_EQ(usage().pages_used, 10u);
}

TEST_F(QuotaPartTest, AChargeGoesWithItsTx) {
  {
    Tx tx(region_);
    EXPECT_EQ(quota_.reserve_pages(tx, 5, false), 5u);
    EXPECT_TRUE(quota_.reserve_inode(tx));
  }  // rolled back
  EXPECT_EQ(usage().pages_used, 0u);
  EXPECT_EQ(usage().inodes_used, 0u);
}

TEST_F(QuotaPartTest, UsageBeyondTheLimitReservesNothingAndReadsAsFull) {
  in_tx([&](Tx& tx) { tx.set(sb_.pages_used, std::uint64_t{12}); });  // more than the quota
  EXPECT_EQ(reserve(1, true), 0u);
  EXPECT_EQ(reserve(1, false), 0u);
  Usage u = usage();
  EXPECT_EQ(u.pages_used, 10u);
  EXPECT_EQ(u.quota_pages, 10u);
}

TEST_F(QuotaPartTest, InodesUpToTheLimit) {
  EXPECT_TRUE(reserve_inode());
  EXPECT_TRUE(reserve_inode());
  EXPECT_TRUE(reserve_inode());
  EXPECT_FALSE(reserve_inode());
  EXPECT_EQ(usage().inodes_used, 3u);
  in_tx([&](Tx& tx) { quota_.unreserve_inode(tx); });
  EXPECT_TRUE(reserve_inode());
  Usage u = usage();
  EXPECT_EQ(u.inodes_used, 3u);
  EXPECT_EQ(u.max_inodes, 3u);
}

TEST_F(QuotaPartTest, XattrBytesAreChargedInWholePages) {
  EXPECT_TRUE(Ok(recharge(0, 1)));  // the first byte costs a page
  EXPECT_EQ(usage().pages_used, 1u);
  EXPECT_TRUE(Ok(recharge(1, kPageSize)));  // still one page
  EXPECT_EQ(usage().pages_used, 1u);
  EXPECT_TRUE(Ok(recharge(kPageSize, kPageSize + 1)));
  EXPECT_EQ(usage().pages_used, 2u);
  EXPECT_TRUE(Ok(recharge(kPageSize + 1, 10)));  // shrinking refunds
  EXPECT_EQ(usage().pages_used, 1u);
  EXPECT_TRUE(Ok(recharge(10, 0)));
  EXPECT_EQ(usage().pages_used, 0u);
}

TEST_F(QuotaPartTest, AnXattrGrowthThatDoesNotFitChargesNothing) {
  ASSERT_EQ(reserve(9, false), 9u);
  EXPECT_TRUE(Fails(recharge(0, 2 * kPageSize), ENOSPC));
  EXPECT_EQ(usage().pages_used, 9u);
  EXPECT_TRUE(Ok(recharge(0, kPageSize)));  // the last page fits
  EXPECT_EQ(usage().pages_used, 10u);
}

TEST(XattrCost, NameAndValueAndTheBookkeeping) {
  EXPECT_EQ(xattr_cost(0, 0), kXattrOverhead);
  EXPECT_EQ(xattr_cost(6, 10), 16 + kXattrOverhead);
}

}  // namespace
}  // namespace hostchanfs::shm::testing
