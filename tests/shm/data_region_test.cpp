// DataRegion: bytes in and out of the data memfd through a file's pages, holes and
// unwritten pages as zeros, runs of adjacent pages, zeroing inside a page in a tx (undone
// by a rollback), and a copy that fails.
#include <fcntl.h>

#include <string>
#include <vector>

#include "tests/shm/parts_fixture.hpp"

namespace hostchanfs::shm::testing {
namespace {

class DataRegionTest : public PartsTest {
 protected:
  // File pages `indexes`, each a page from the pool, unwritten.
  std::vector<PageEntry> give_pages(std::initializer_list<std::uint64_t> indexes) {
    std::vector<PageEntry> out;
    for (std::uint64_t index : indexes) out.push_back({index, take_page() | kUnwritten});
    return out;
  }
  DataRegion::Written put(const std::vector<PageEntry>& pt, std::uint64_t offset, const std::string& text) {
    iovec iov{const_cast<char*>(text.data()), text.size()};
    return data_.write(pt, offset, offset + text.size(), {&iov, 1});
  }
  static void mark_written(std::vector<PageEntry>& pt) {
    for (auto& e : pt) e.value = page_number(e.value);
  }
  std::string get(const std::vector<PageEntry>& pt, std::uint64_t offset, std::size_t len) {
    std::string out(len, '?');
    EXPECT_TRUE(data_.read(pt, offset, std::as_writable_bytes(std::span(out.data(), len))));
    return out;
  }
};

TEST_F(DataRegionTest, WrittenBytesReadBackAndHolesReadAsZeros) {
  auto pt = give_pages({0, 2});
  std::string first(kPageSize, 'a'), third = "ccc";
  EXPECT_EQ(put(pt, 0, first).bytes, kPageSize);
  EXPECT_EQ(put({pt[1]}, 2 * kPageSize + 10, third).bytes, 3u);
  mark_written(pt);
  std::string all = get(pt, 0, 3 * kPageSize);
  EXPECT_EQ(all.substr(0, kPageSize), first);
  EXPECT_EQ(all.substr(kPageSize, kPageSize), std::string(kPageSize, '\0'));  // no page: a hole
  EXPECT_EQ(all.substr(2 * kPageSize, 10), std::string(10, '\0'));             // never written
  EXPECT_EQ(all.substr(2 * kPageSize + 10, 3), third);
}

// ... also when it follows a written page in the file and in the memfd (one run for pread
// would read its old bytes).
TEST_F(DataRegionTest, AnUnwrittenPageAfterAWrittenOneReadsAsZeros) {
  auto pt = give_pages({0, 1});
  EXPECT_EQ(put(pt, 0, std::string(kPageSize, 'w') + "stale").bytes, kPageSize + 5);
  mark_written(pt);
  pt[1].value |= kUnwritten;
  EXPECT_EQ(get(pt, 0, kPageSize + 5), std::string(kPageSize, 'w') + std::string(5, '\0'));
}

TEST_F(DataRegionTest, AnUnwrittenPageReadsAsZerosWhateverItHolds) {
  auto pt = give_pages({0});
  EXPECT_EQ(put(pt, 0, "abc").bytes, 3u);
  EXPECT_EQ(get(pt, 0, 3), std::string(3, '\0'));  // still marked unwritten
  mark_written(pt);
  EXPECT_EQ(get(pt, 0, 3), "abc");
}

// Gathered from several buffers, across pages that follow each other in the region.
TEST_F(DataRegionTest, AGatherWriteAcrossAdjacentPages) {
  auto pt = give_pages({0, 1});
  std::string a(kPageSize - 2, 'a'), b = "bbbb";
  iovec iov[] = {{a.data(), a.size()}, {b.data(), b.size()}};
  EXPECT_EQ(data_.write(pt, 0, a.size() + b.size(), iov).bytes, a.size() + b.size());
  mark_written(pt);
  EXPECT_EQ(get(pt, kPageSize - 3, 5), "abbbb");
}

TEST_F(DataRegionTest, ZeroingInsideAPageIsUndoneByARollback) {
  auto pt = give_pages({0});
  put(pt, 0, "abcdef");
  mark_written(pt);
  {
    Tx tx(region_);
    ASSERT_TRUE(data_.zero(tx, page_number(pt[0].value), 1, 4));
    EXPECT_EQ(get(pt, 0, 6), std::string("a\0\0\0ef", 6));
  }  // rolled back: the old bytes come back
  EXPECT_EQ(get(pt, 0, 6), "abcdef");
  in_tx([&](Tx& tx) { ASSERT_TRUE(data_.zero(tx, page_number(pt[0].value), 1, 4)); });
  EXPECT_EQ(get(pt, 0, 6), std::string("a\0\0\0ef", 6));
  in_tx([&](Tx& tx) { ASSERT_TRUE(data_.zero(tx, page_number(pt[0].value), 3, 3)); });  // empty: nothing
}

TEST_F(DataRegionTest, ACopyThatFailsSaysWhy) {
  auto pt = give_pages({0});
  UniqueFd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  DataRegion unwritable(null_fd.get());
  std::string text = "lost";
  iovec iov{text.data(), text.size()};
  DataRegion::Written w = unwritable.write(pt, 0, text.size(), {&iov, 1});
  EXPECT_EQ(w.bytes, 0u);
  ASSERT_TRUE(w.error.has_value());
  EXPECT_EQ(*w.error, std::errc::bad_file_descriptor);
}

}  // namespace
}  // namespace hostchanfs::shm::testing
