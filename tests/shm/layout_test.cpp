// The regions' layout: what format_regions() lays out, what attach_regions() accepts, and
// what peek_usage() reads without either.
#include <fcntl.h>

#include <cstring>

#include "shm/layout.hpp"
#include "tests/shm/parts_fixture.hpp"
#include "tests/shm/store_fixture.hpp"

namespace hostchanfs::shm::testing {
namespace {

UniqueFd memfd(std::uint64_t size = 0) { return must(make_memfd("layout-test", size)); }
UniqueFd dup_of(int fd) { return UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 0)); }

Laid<Regions> format(const StoreOptions& opts) { return format_regions(opts, memfd(), memfd()); }
Regions must_lay(Laid<Regions> r) {
  if (!r) throw std::runtime_error(r.error().what);
  return std::move(r).value();
}

TEST(Layout, FormatLaysOutTheSuperblockAndTheRoot) {
  Regions r = format_for_test(StoreOptions{.size_bytes = 10 * kPageSize, .max_inodes = 20, .root_uid = 7,
                                           .root_gid = 8, .root_mode = 0750});
  const auto& sb = r.meta->user_as<rec::Superblock>();
  EXPECT_EQ(sb.quota_pages, 10u);
  EXPECT_EQ(sb.max_inodes, 20u);
  EXPECT_EQ(sb.inodes_used, 1u);  // the root
  EXPECT_EQ(sb.pages_used, 0u);
  EXPECT_EQ(sb.chunk_pages, rec::kDefaultChunkPages);
  EXPECT_EQ(must(fd_size(r.meta->fd())), meta_region_size(10, 20));
  EXPECT_EQ(must(fd_size(r.data.get())), 10 * kPageSize);
  InodeTable inodes(*r.meta);
  const InodeRecord* root = inodes.find(kRootIno);
  ASSERT_TRUE(root);
  EXPECT_EQ(root->mode, S_IFDIR | 0750u);
  EXPECT_EQ(root->uid, 7u);
  EXPECT_EQ(root->nlink, 2u);
  EXPECT_EQ(root->parent, kRootIno);
  EXPECT_EQ(root->work_from, rec::kNoWork);
  auto checked = r.meta->check(persist::CheckLevel::kDeep);
  EXPECT_TRUE(checked) << checked.error().what;
}

TEST(Layout, FormatRefusesImpossibleSizes) {
  auto code = [](const Laid<Regions>& r) { return r ? std::errc{} : r.error().code; };
  EXPECT_EQ(code(format(StoreOptions{.size_bytes = kPageSize - 1})), std::errc::invalid_argument);
  EXPECT_EQ(code(format(StoreOptions{.size_bytes = kPageSize, .max_inodes = 1ull << 31})), std::errc::invalid_argument);
  EXPECT_EQ(code(format(StoreOptions{.size_bytes = std::uint64_t{1} << 42})), std::errc::file_too_large);
  // More inodes than the metadata bound (20% of the quota + 16 MiB) allows.
  const std::uint64_t allowed = Store::max_inodes_allowed(kPageSize);
  EXPECT_EQ(code(format(StoreOptions{.size_bytes = kPageSize, .max_inodes = allowed + 1})), std::errc::invalid_argument);
  EXPECT_EQ(code(format(StoreOptions{.size_bytes = kPageSize, .max_inodes = allowed})), std::errc{});
}

TEST(Layout, AttachFindsWhatFormatMade) {
  UniqueFd meta = memfd(), data = memfd();
  UniqueFd meta_copy = dup_of(meta.get()), data_copy = dup_of(data.get());
  must_lay(format_regions(StoreOptions{.size_bytes = 4 * kPageSize, .max_inodes = 9}, std::move(meta), std::move(data)));
  auto again = attach_regions(std::move(meta_copy), std::move(data_copy));
  ASSERT_TRUE(again) << again.error().what;
  const auto& sb = again.value().meta->user_as<rec::Superblock>();
  EXPECT_EQ(sb.quota_pages, 4u);
  EXPECT_EQ(sb.max_inodes, 9u);
}

TEST(Layout, AHalfFormattedRegionIsNotAStore) {
  UniqueFd meta = memfd(), data = memfd();
  UniqueFd meta_copy = dup_of(meta.get()), data_copy = dup_of(data.get()), peek_copy = dup_of(meta.get());
  {
    Regions r = must_lay(format_regions(StoreOptions{.size_bytes = 4 * kPageSize}, std::move(meta), std::move(data)));
    std::memset(r.meta->header().magic, 0, sizeof r.meta->header().magic);  // as if formatting had stopped
  }
  auto attached = attach_regions(std::move(meta_copy), std::move(data_copy));
  ASSERT_FALSE(attached);
  EXPECT_EQ(attached.error().code, std::errc::protocol_error);
  EXPECT_TRUE(Fails(peek_usage(peek_copy.get()), EPROTO));
}

TEST(Layout, PeekUsageReadsTheCountersClamped) {
  Regions r = format_for_test(StoreOptions{.size_bytes = 4 * kPageSize, .max_inodes = 5});
  UniqueFd peek_copy = dup_of(r.meta->fd());
  auto& sb = r.meta->user_as<rec::Superblock>();
  auto set_used = [&](std::uint64_t pages) {
    Tx tx(*r.meta);
    tx.set(sb.pages_used, pages);
    tx.commit();
  };
  set_used(2);
  Usage u = must(peek_usage(peek_copy.get()));
  EXPECT_EQ(u.pages_used, 2u);
  EXPECT_EQ(u.quota_pages, 4u);
  EXPECT_EQ(u.inodes_used, 1u);
  EXPECT_EQ(u.max_inodes, 5u);
  set_used(9);  // more than the quota: reads as full, never beyond
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
