// The regions' layout: what format_regions() lays out, what attach_regions() accepts, and
// what peek_usage() reads without either.
#include <cstring>

#include "shm/layout.hpp"
#include "tests/shm/store_fixture.hpp"
#include "sys/memfd.hpp"

namespace hostchanfs::shm::testing {
namespace {

UniqueFd memfd(std::uint64_t size = 0) { return must(make_memfd("layout-test", size)); }
UniqueFd dup_of(const UniqueFd& fd) { return UniqueFd(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0)); }

TEST(Layout, FormatLaysOutTheHeaderTableAndSegment) {
  UniqueFd meta = memfd(), data = memfd();
  int data_fd = data.get();
  Regions r = must(format_regions(StoreOptions{.size_bytes = 10 * kPageSize, .max_inodes = 20,
                                               .root_uid = 7, .root_gid = 8, .root_mode = 0750},
                                  std::move(meta), std::move(data)));
  EXPECT_EQ(std::memcmp(r.header->magic, kMagic, sizeof kMagic), 0);
  EXPECT_EQ(r.header->version, kLayoutVersion);
  EXPECT_EQ(r.header->quota_pages, 10u);
  EXPECT_EQ(r.header->max_inodes, 20u);
  EXPECT_EQ(r.header->table_offset, kPageSize);
  EXPECT_EQ(r.header->segment_offset + r.header->segment_size, meta_region_size(10, 20));
  EXPECT_EQ(r.header->inodes_used.load(), 1u);  // the root
  EXPECT_EQ(r.data.fd(), data_fd);
  EXPECT_EQ(must(fd_size(data_fd)), 10 * kPageSize);
  const InodeRec& root = r.table[kRootIno];
  EXPECT_EQ(root.mode, S_IFDIR | 0750u);
  EXPECT_EQ(root.uid, 7u);
  EXPECT_EQ(root.nlink, 2u);
  EXPECT_EQ(root.parent, kRootIno);
  EXPECT_TRUE(root.dir);
  EXPECT_EQ(r.page_slots->capacity, 10u);
  EXPECT_EQ(r.inode_slots->capacity, 20u);
}

TEST(Layout, FormatRefusesImpossibleSizes) {
  EXPECT_TRUE(Fails(format_regions(StoreOptions{.size_bytes = kPageSize - 1}, memfd(), memfd()), EINVAL));
  EXPECT_TRUE(Fails(format_regions(StoreOptions{.size_bytes = kPageSize, .max_inodes = 1ull << 31},
                                   memfd(), memfd()),
                    EINVAL));
  EXPECT_TRUE(Fails(format_regions(StoreOptions{.size_bytes = std::uint64_t{kUnwritten} * kPageSize},
                                   memfd(), memfd()),
                    EFBIG));
}

TEST(Layout, AttachFindsWhatFormatMade) {
  UniqueFd meta = memfd(), data = memfd();
  UniqueFd meta_copy = dup_of(meta), data_copy = dup_of(data);
  {
    Regions r = must(format_regions(StoreOptions{.size_bytes = 4 * kPageSize}, std::move(meta),
                                    std::move(data)));
    r.header->pages_used = 3;
  }
  Regions again = must(attach_regions(std::move(meta_copy), std::move(data_copy)));
  EXPECT_EQ(again.header->pages_used.load(), 3u);
  EXPECT_EQ(again.page_slots->capacity, 4u);
  EXPECT_EQ(again.inode_slots->capacity, default_max_inodes(4 * kPageSize));
}

TEST(Layout, AHalfFormattedRegionIsNotAStore) {
  UniqueFd meta = memfd(), data = memfd();
  UniqueFd meta_copy = dup_of(meta), data_copy = dup_of(data), peek_copy = dup_of(meta);
  {
    Regions r = must(format_regions(StoreOptions{.size_bytes = 4 * kPageSize}, std::move(meta),
                                    std::move(data)));
    std::memset(r.header->magic, 0, sizeof r.header->magic);  // as if formatting had stopped
  }
  EXPECT_TRUE(Fails(attach_regions(std::move(meta_copy), std::move(data_copy)), EPROTO));
  EXPECT_TRUE(Fails(peek_usage(peek_copy.get()), EPROTO));
}

TEST(Layout, PeekUsageReadsTheCountersClamped) {
  UniqueFd meta = memfd(), data = memfd();
  UniqueFd peek_copy = dup_of(meta);
  Regions r = must(format_regions(StoreOptions{.size_bytes = 4 * kPageSize, .max_inodes = 5},
                                  std::move(meta), std::move(data)));
  r.header->pages_used = 2;
  Usage u = must(peek_usage(peek_copy.get()));
  EXPECT_EQ(u.pages_used, 2u);
  EXPECT_EQ(u.quota_pages, 4u);
  EXPECT_EQ(u.inodes_used, 1u);
  EXPECT_EQ(u.max_inodes, 5u);
  r.header->pages_used = 9;  // more than the quota: reads as full, never beyond
  EXPECT_EQ(must(peek_usage(peek_copy.get())).pages_used, 4u);
  EXPECT_TRUE(Fails(peek_usage(memfd(16).get()), EPROTO));
}

TEST(Layout, TheMetaRegionGrowsWithTheQuotaAndTheInodeLimit) {
  const std::uint64_t base = meta_region_size(256, 1024);
  EXPECT_EQ(base % kPageSize, 0u);
  EXPECT_GT(meta_region_size(512, 1024), base);
  EXPECT_GT(meta_region_size(256, 2048), base);
  EXPECT_EQ(default_max_inodes(kPageSize), 1024u);                // at least 1024
  EXPECT_EQ(default_max_inodes(8192 * kPageSize), 8192u);         // one per page
  EXPECT_EQ(default_max_inodes(8192 * kPageSize + 1), 8193u);     // pages round up
}

}  // namespace
}  // namespace hostchanfs::shm::testing
