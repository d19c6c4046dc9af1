// DataRegion: file bytes in and out of the data memfd through a file's page table, holes
// as zeros, runs of adjacent pages, zeroing inside a page, and a copy that fails.
#include <fcntl.h>

#include <string>
#include <vector>

#include "tests/shm/parts_fixture.hpp"

namespace hostchanfs::shm::testing {
namespace {

class DataRegionTest : public PartsTest {
 protected:
  // Give the file pages `indexes` (from the pool), unwritten.
  void give_pages(PageTable& pt, std::initializer_list<std::uint64_t> indexes) {
    for (std::uint64_t index : indexes) pt.emplace(index, pages_.take() | kUnwritten);
  }
  DataRegion::Written put(PageTable& pt, std::uint64_t offset, const std::string& text) {
    iovec iov{const_cast<char*>(text.data()), text.size()};
    return data_.write(pt, offset, offset + text.size(), {&iov, 1});
  }
  std::string get(const PageTable& pt, std::uint64_t offset, std::size_t len) {
    std::string out(len, '?');
    EXPECT_TRUE(data_.read(pt, offset, std::as_writable_bytes(std::span(out.data(), len))));
    return out;
  }
};

TEST_F(DataRegionTest, WrittenBytesReadBackAndHolesReadAsZeros) {
  PageTable& pt = new_page_table();
  give_pages(pt, {0, 2});
  std::string first(kPageSize, 'a'), third = "ccc";
  EXPECT_EQ(put(pt, 0, first).bytes, kPageSize);
  EXPECT_EQ(put(pt, 2 * kPageSize + 10, third).bytes, 3u);
  std::string all = get(pt, 0, 3 * kPageSize);
  EXPECT_EQ(all.substr(0, kPageSize), first);
  EXPECT_EQ(all.substr(kPageSize, kPageSize), std::string(kPageSize, '\0'));  // no page: a hole
  EXPECT_EQ(all.substr(2 * kPageSize, 10), std::string(10, '\0'));             // never written
  EXPECT_EQ(all.substr(2 * kPageSize + 10, 3), third);
}

TEST_F(DataRegionTest, AWriteMarksItsPagesWrittenAndLeavesTheOthers) {
  PageTable& pt = new_page_table();
  give_pages(pt, {0, 1, 2});
  put(pt, kPageSize + 1, "x");
  EXPECT_FALSE(is_written(*pt.find(0)));
  EXPECT_TRUE(is_written(*pt.find(1)));
  EXPECT_FALSE(is_written(*pt.find(2)));
  EXPECT_EQ(next_data_page(pt, 0), 1u);
  EXPECT_EQ(next_hole_page(pt, 1), 2u);
}

// Gathered from several buffers, across pages that follow each other in the region.
TEST_F(DataRegionTest, AGatherWriteAcrossAdjacentPages) {
  PageTable& pt = new_page_table();
  give_pages(pt, {0, 1});
  std::string a(kPageSize - 2, 'a'), b = "bbbb";
  iovec iov[] = {{a.data(), a.size()}, {b.data(), b.size()}};
  EXPECT_EQ(data_.write(pt, 0, a.size() + b.size(), iov).bytes, a.size() + b.size());
  EXPECT_EQ(get(pt, kPageSize - 3, 5), "abbbb");
}

TEST_F(DataRegionTest, ZeroingInsideAPageKeepsThePage) {
  PageTable& pt = new_page_table();
  give_pages(pt, {0});
  put(pt, 0, "abcdef");
  data_.zero(pt, 0, 1, 4);
  EXPECT_EQ(get(pt, 0, 6), std::string("a\0\0\0ef", 6));
  data_.zero(pt, 7, 0, 10);  // a page the file does not have: nothing
  data_.zero(pt, 0, 3, 3);   // an empty range: nothing
  EXPECT_EQ(pt.size(), 1u);
}

TEST_F(DataRegionTest, ACopyThatFailsSaysWhy) {
  PageTable& pt = new_page_table();
  give_pages(pt, {0});
  DataRegion unwritable(UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC)));
  std::string text = "lost";
  iovec iov{text.data(), text.size()};
  DataRegion::Written w = unwritable.write(pt, 0, text.size(), {&iov, 1});
  EXPECT_EQ(w.bytes, 0u);
  ASSERT_TRUE(w.error.has_value());
  EXPECT_EQ(*w.error, std::errc::bad_file_descriptor);
  EXPECT_FALSE(is_written(*pt.find(0)));  // not copied: still unwritten
}

}  // namespace
}  // namespace hostchanfs::shm::testing
