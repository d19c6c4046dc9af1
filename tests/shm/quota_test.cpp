// Quota: reserving pages (as much as fits, or all or nothing) and inodes against the
// limits, xattr bytes recharged in whole pages, and what statfs and `ls` read back.
#include "tests/shm/parts_fixture.hpp"
#include "tests/shm/store_fixture.hpp"

namespace hostchanfs::shm::testing {
namespace {

class QuotaPartTest : public ::testing::Test {
 protected:
  QuotaPartTest() {
    header_.quota_pages = 10;
    header_.max_inodes = 3;
  }
  Header header_{};
  Quota quota_{header_};
};

TEST_F(QuotaPartTest, APartialReservationTakesWhatFits) {
  EXPECT_EQ(quota_.reserve_pages(4, true), 4u);
  EXPECT_EQ(quota_.reserve_pages(100, true), 6u);
  EXPECT_EQ(quota_.pages_used(), 10u);
  EXPECT_EQ(quota_.reserve_pages(1, true), 0u);  // full
  quota_.unreserve_pages(3);
  EXPECT_EQ(quota_.reserve_pages(5, true), 3u);
}

TEST_F(QuotaPartTest, AWholeReservationIsAllOrNothing) {
  EXPECT_EQ(quota_.reserve_pages(7, false), 7u);
  EXPECT_EQ(quota_.reserve_pages(4, false), 0u);  // 3 left: none taken
  EXPECT_EQ(quota_.pages_used(), 7u);
  EXPECT_EQ(quota_.reserve_pages(3, false), 3u);  // exactly what is left
  EXPECT_EQ(quota_.pages_used(), 10u);
}

TEST_F(QuotaPartTest, UsageBeyondTheLimitReservesNothingAndReadsAsFull) {
  header_.pages_used = 12;  // a store attached with a smaller quota than it holds
  EXPECT_EQ(quota_.reserve_pages(1, true), 0u);
  EXPECT_EQ(quota_.reserve_pages(1, false), 0u);
  Usage u = quota_.usage();
  EXPECT_EQ(u.pages_used, 10u);
  EXPECT_EQ(u.quota_pages, 10u);
}

TEST_F(QuotaPartTest, InodesUpToTheLimit) {
  EXPECT_TRUE(quota_.reserve_inode());
  EXPECT_TRUE(quota_.reserve_inode());
  EXPECT_TRUE(quota_.reserve_inode());
  EXPECT_FALSE(quota_.reserve_inode());
  EXPECT_EQ(quota_.inodes_used(), 3u);
  quota_.unreserve_inode();
  EXPECT_TRUE(quota_.reserve_inode());
  Usage u = quota_.usage();
  EXPECT_EQ(u.inodes_used, 3u);
  EXPECT_EQ(u.max_inodes, 3u);
}

TEST_F(QuotaPartTest, XattrBytesAreChargedInWholePages) {
  EXPECT_TRUE(Ok(quota_.recharge_xattrs(0, 1)));  // the first byte costs a page
  EXPECT_EQ(quota_.pages_used(), 1u);
  EXPECT_TRUE(Ok(quota_.recharge_xattrs(1, kPageSize)));  // still one page
  EXPECT_EQ(quota_.pages_used(), 1u);
  EXPECT_TRUE(Ok(quota_.recharge_xattrs(kPageSize, kPageSize + 1)));
  EXPECT_EQ(quota_.pages_used(), 2u);
  EXPECT_TRUE(Ok(quota_.recharge_xattrs(kPageSize + 1, 10)));  // shrinking refunds
  EXPECT_EQ(quota_.pages_used(), 1u);
  EXPECT_TRUE(Ok(quota_.recharge_xattrs(10, 0)));
  EXPECT_EQ(quota_.pages_used(), 0u);
}

TEST_F(QuotaPartTest, AnXattrGrowthThatDoesNotFitChargesNothing) {
  ASSERT_EQ(quota_.reserve_pages(9, false), 9u);
  EXPECT_TRUE(Fails(quota_.recharge_xattrs(0, 2 * kPageSize), ENOSPC));
  EXPECT_EQ(quota_.pages_used(), 9u);
  EXPECT_TRUE(Ok(quota_.recharge_xattrs(0, kPageSize)));  // the last page fits
  EXPECT_EQ(quota_.pages_used(), 10u);
}

TEST(XattrCost, NameAndValueAndTheBookkeeping) {
  EXPECT_EQ(xattr_cost(0, 0), kXattrOverhead);
  EXPECT_EQ(xattr_cost(6, 10), 16 + kXattrOverhead);
}

}  // namespace
}  // namespace hostchanfs::shm::testing
