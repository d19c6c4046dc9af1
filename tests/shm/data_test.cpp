// File data: read and write at offsets, holes, truncate, fallocate, SEEK_DATA/SEEK_HOLE,
// the byte quota's edge cases, and unlinked-but-open files. The expected numbers are what
// a kernel tmpfs of the same size printed for the same steps.
#include <fcntl.h>
#include <linux/falloc.h>

#include "tests/shm/store_fixture.hpp"

namespace hostchanfs::shm::testing {
namespace {

constexpr std::uint64_t kPage = kPageSize;

class DataTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    f = create(kRootIno, "f");
  }
  Attr f;
};

bool all_zero(std::string_view s) { return s.find_first_not_of('\0') == std::string_view::npos; }

// --- read and write -----------------------------------------------------------------------

TEST_F(DataTest, WriteAndReadAtOffsets) {
  EXPECT_EQ(must(write(f.ino, 0, "hello")), 5u);
  EXPECT_EQ(must(write(f.ino, 3, "LO world")), 8u);
  EXPECT_EQ(read(f.ino, 0, 100), "helLO world");
  EXPECT_EQ(read(f.ino, 6, 3), "wor");
  EXPECT_EQ(read(f.ino, 11, 10), "");
  EXPECT_EQ(read(f.ino, 1000, 10), "");
  EXPECT_EQ(attr(f.ino).size, 11u);
  // A write across a page boundary.
  std::string across(kPage + 100, 'a');
  EXPECT_EQ(must(write(f.ino, kPage - 50, across)), across.size());
  EXPECT_EQ(read(f.ino, kPage - 50, across.size()), across);
  EXPECT_EQ(attr(f.ino).blocks, 24u);  // pages 0, 1 and 2
  EXPECT_EQ(s().pages_used(), 3u);
}

TEST_F(DataTest, AReadLongerThanTheFileReturnsTheRest) {
  ASSERT_TRUE(Ok(write(f.ino, 0, "0123456789")));
  EXPECT_EQ(read(f.ino, 4, 1000), "456789");
  EXPECT_EQ(read(f.ino, 4, std::numeric_limits<std::size_t>::max()), "456789");
}

TEST_F(DataTest, HolesReadAsZerosAndCostNothing) {
  ASSERT_EQ(must(write(f.ino, 10 * kPage + 7, "tail")), 4u);
  Attr a = attr(f.ino);
  EXPECT_EQ(a.size, 10 * kPage + 11);
  EXPECT_EQ(a.blocks, 8u);
  EXPECT_EQ(s().pages_used(), 1u);
  std::string all = read(f.ino, 0, a.size);
  ASSERT_EQ(all.size(), a.size);
  EXPECT_TRUE(all_zero(std::string_view(all).substr(0, 10 * kPage + 7)));
  EXPECT_EQ(all.substr(10 * kPage + 7), "tail");
  // Holes are zeroed in the caller's buffer, whatever it held before.
  std::string dirty(a.size + 100, '\xff');
  EXPECT_EQ(must(s().read(f.ino, 0, {reinterpret_cast<std::byte*>(dirty.data()), dirty.size()})), a.size);
  EXPECT_EQ(dirty.substr(0, a.size), all);
}

// Pages freed by a delete come back in ascending order, so a file written next lies in
// one run of the data region (the store copies it with one pread/pwrite, not one per page).
TEST_F(DataTest, AFileWrittenAfterADeleteLiesInOrderInTheDataRegion) {
  constexpr std::uint64_t kPages = 8;
  ASSERT_EQ(must(write(f.ino, 0, std::string(kPages * kPage, 'o'))), kPages * kPage);
  Attr g = create(kRootIno, "g");
  ASSERT_TRUE(Ok(s().unlink(kRootIno, "f")));
  s().forget(f.ino, 1);
  ASSERT_EQ(s().pages_used(), 0u);
  std::string pages;
  for (std::uint64_t i = 0; i < kPages; ++i) pages += std::string(kPage, static_cast<char>('a' + i));
  ASSERT_EQ(must(write(g.ino, 0, pages)), pages.size());
  std::string region(kPages * kPage, '\0');
  ASSERT_EQ(::pread(s().data_fd(), region.data(), region.size(), 0), static_cast<ssize_t>(region.size()));
  for (std::uint64_t i = 0; i < kPages; ++i)
    EXPECT_EQ(region[i * kPage], static_cast<char>('a' + i)) << "data page " << i;
}

TEST_F(DataTest, GatherWriteFromSeveralBuffers) {
  std::string p1 = "abc", p2(kPage, 'x'), p3 = "end";
  iovec io[] = {{p1.data(), p1.size()}, {p2.data(), p2.size()}, {p3.data(), p3.size()}};
  EXPECT_EQ(must(s().write(f.ino, kPage - 1, std::span<const iovec>(io, 3), root_caller())),
            p1.size() + p2.size() + p3.size());
  EXPECT_EQ(read(f.ino, kPage - 1, 10000), p1 + p2 + p3);
  EXPECT_EQ(s().pages_used(), 3u);
  EXPECT_EQ(must(write(f.ino, 0, "")), 0u);
}

TEST_F(DataTest, DataCallsOnOtherKindsFail) {
  Attr d = make_dir(kRootIno, "d");
  EXPECT_TRUE(Fails(write(d.ino, 0, "x"), EISDIR));
  EXPECT_TRUE(Fails(read_result(d.ino, 0, 1), EISDIR));
  EXPECT_TRUE(Fails(s().fallocate(d.ino, 0, 0, kPage), EISDIR));
  EXPECT_TRUE(Fails(write(f.ino, kMaxFileSize, "x"), EFBIG));
  EXPECT_TRUE(Fails(s().fallocate(f.ino, 0, kMaxFileSize, kPage), EFBIG));
}

// --- truncate -----------------------------------------------------------------------------

TEST_F(DataTest, TruncateShrinkFreesPagesAndZeroesTheTail) {
  ASSERT_EQ(must(write(f.ino, 0, std::string(3 * kPage, 'A'))), 3 * kPage);
  EXPECT_EQ(s().pages_used(), 3u);
  Attr a = must(truncate(f.ino, 100));
  EXPECT_EQ(a.size, 100u);
  EXPECT_EQ(a.blocks, 8u);
  EXPECT_EQ(s().pages_used(), 1u);
  a = must(truncate(f.ino, 2 * kPage));
  EXPECT_EQ(a.size, 2 * kPage);
  EXPECT_EQ(a.blocks, 8u);  // growing adds no pages
  std::string back = read(f.ino, 0, 2 * kPage);
  EXPECT_EQ(back.substr(0, 100), std::string(100, 'A'));
  EXPECT_TRUE(all_zero(std::string_view(back).substr(100)));
  ASSERT_TRUE(Ok(truncate(f.ino, 0)));
  EXPECT_EQ(s().pages_used(), 0u);
  EXPECT_EQ(attr(f.ino).blocks, 0u);
}

TEST_F(DataTest, TruncateOnAPageBoundaryKeepsThePageBefore) {
  ASSERT_TRUE(Ok(write(f.ino, 0, std::string(2 * kPage, 'B'))));
  ASSERT_TRUE(Ok(truncate(f.ino, kPage)));
  EXPECT_EQ(s().pages_used(), 1u);
  EXPECT_EQ(read(f.ino, 0, 2 * kPage), std::string(kPage, 'B'));
}

// tmpfs frees pages fallocated past the end on any truncate that does not grow the file,
// even to the same size; growing keeps them.
TEST_F(DataTest, TruncateFreesPagesReservedPastTheEnd) {
  ASSERT_TRUE(Ok(write(f.ino, 0, std::string(2 * kPage, 'x'))));
  ASSERT_TRUE(Ok(s().fallocate(f.ino, FALLOC_FL_KEEP_SIZE, 2 * kPage, 8 * kPage)));
  EXPECT_EQ(attr(f.ino).blocks, 80u);
  ASSERT_TRUE(Ok(truncate(f.ino, 2 * kPage)));
  EXPECT_EQ(attr(f.ino).blocks, 16u);
  EXPECT_EQ(s().pages_used(), 2u);
  ASSERT_TRUE(Ok(truncate(f.ino, 0)));
  ASSERT_TRUE(Ok(s().fallocate(f.ino, FALLOC_FL_KEEP_SIZE, 0, 8 * kPage)));
  ASSERT_TRUE(Ok(truncate(f.ino, 100000)));
  EXPECT_EQ(attr(f.ino).blocks, 64u);
  EXPECT_EQ(attr(f.ino).size, 100000u);
}

// --- fallocate ----------------------------------------------------------------------------

TEST_F(DataTest, FallocateReservesPagesAndExtends) {
  ASSERT_TRUE(Ok(s().fallocate(f.ino, 0, 0, 2 * kPage)));
  Attr a = attr(f.ino);
  EXPECT_EQ(a.size, 2 * kPage);
  EXPECT_EQ(a.blocks, 16u);
  EXPECT_EQ(s().pages_used(), 2u);
  EXPECT_TRUE(all_zero(read(f.ino, 0, 2 * kPage)));
  ASSERT_TRUE(Ok(s().fallocate(f.ino, FALLOC_FL_KEEP_SIZE, 2 * kPage, 2 * kPage)));
  a = attr(f.ino);
  EXPECT_EQ(a.size, 2 * kPage);
  EXPECT_EQ(a.blocks, 32u);
  // Again over the same range: nothing new.
  ASSERT_TRUE(Ok(s().fallocate(f.ino, 0, 0, 4 * kPage)));
  EXPECT_EQ(s().pages_used(), 4u);
  EXPECT_EQ(attr(f.ino).size, 4 * kPage);
  // A partial page at each end still reserves the whole page.
  Attr g = create(kRootIno, "g");
  ASSERT_TRUE(Ok(s().fallocate(g.ino, 0, 100, kPage)));
  EXPECT_EQ(attr(g.ino).blocks, 16u);
  EXPECT_EQ(attr(g.ino).size, kPage + 100);
}

TEST_F(DataTest, FallocateModes) {
  EXPECT_TRUE(Fails(s().fallocate(f.ino, FALLOC_FL_PUNCH_HOLE, 0, kPage), EOPNOTSUPP));
  EXPECT_TRUE(Fails(s().fallocate(f.ino, FALLOC_FL_ZERO_RANGE, 0, kPage), EOPNOTSUPP));
  EXPECT_TRUE(Fails(s().fallocate(f.ino, 0, 0, 0), EINVAL));
}

TEST_F(DataTest, PunchHoleGivesPagesBackAndZeroesPartialPages) {
  ASSERT_TRUE(Ok(write(f.ino, 0, std::string(4 * kPage, 'C'))));
  // Whole pages 1 and 2, plus the last 100 bytes of page 0 and the first 100 of page 3.
  ASSERT_TRUE(
      Ok(s().fallocate(f.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, kPage - 100, 2 * kPage + 200)));
  Attr a = attr(f.ino);
  EXPECT_EQ(a.size, 4 * kPage);
  EXPECT_EQ(a.blocks, 16u);
  EXPECT_EQ(s().pages_used(), 2u);
  std::string back = read(f.ino, 0, 4 * kPage);
  EXPECT_EQ(back.substr(0, kPage - 100), std::string(kPage - 100, 'C'));
  EXPECT_TRUE(all_zero(std::string_view(back).substr(kPage - 100, 2 * kPage + 200)));
  EXPECT_EQ(back.substr(3 * kPage + 100), std::string(kPage - 100, 'C'));
  // Inside one page: zeroes, frees nothing.
  ASSERT_TRUE(Ok(s().fallocate(f.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 10, 20)));
  EXPECT_EQ(read(f.ino, 0, 40), std::string(10, 'C') + std::string(20, '\0') + std::string(10, 'C'));
  EXPECT_EQ(s().pages_used(), 2u);
  // Punching everything, and past the end, leaves the size.
  ASSERT_TRUE(Ok(s().fallocate(f.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 100 * kPage)));
  EXPECT_EQ(s().pages_used(), 0u);
  EXPECT_EQ(attr(f.ino).size, 4 * kPage);
  EXPECT_EQ(attr(f.ino).blocks, 0u);
}

TEST_F(DataTest, FallocateIsAllOrNothing) {
  ASSERT_TRUE(Ok(write(f.ino, 0, std::string(200 * kPage, 'D'))));
  Attr g = create(kRootIno, "g");
  ASSERT_TRUE(Ok(write(g.ino, 0, "x")));
  Attr before = attr(g.ino);
  // 55 pages are free; a 57-page range whose first page is held needs 56.
  EXPECT_EQ(s().statfs().blocks_free, 55u);
  EXPECT_TRUE(Fails(s().fallocate(g.ino, 0, 0, 57 * kPage), ENOSPC));
  EXPECT_TRUE(Fails(s().fallocate(g.ino, FALLOC_FL_KEEP_SIZE, 0, 57 * kPage), ENOSPC));
  Attr after = attr(g.ino);
  EXPECT_EQ(after.size, before.size);
  EXPECT_EQ(after.blocks, before.blocks);
  EXPECT_EQ(s().pages_used(), 201u);
  EXPECT_EQ(read(g.ino, 0, 10), "x");
  // Exactly what is free fits.
  ASSERT_TRUE(Ok(s().fallocate(g.ino, 0, 0, 56 * kPage)));
  EXPECT_EQ(s().statfs().blocks_free, 0u);
  EXPECT_EQ(attr(g.ino).size, 56 * kPage);
  // When full, a range already held is fine.
  EXPECT_TRUE(Ok(s().fallocate(g.ino, 0, 0, 56 * kPage)));
  EXPECT_TRUE(Ok(s().fallocate(f.ino, FALLOC_FL_KEEP_SIZE, 10, 100 * kPage)));
  EXPECT_TRUE(Fails(s().fallocate(g.ino, FALLOC_FL_KEEP_SIZE, 0, 57 * kPage), ENOSPC));
}

// --- SEEK_DATA / SEEK_HOLE ----------------------------------------------------------------

TEST_F(DataTest, SeekFindsDataAndHolesAsTmpfs) {
  EXPECT_TRUE(Fails(s().seek(f.ino, 0, SEEK_DATA), ENXIO));  // empty file
  EXPECT_TRUE(Fails(s().seek(f.ino, 0, SEEK_HOLE), ENXIO));
  // tmpfs: fallocated but never written pages are holes.
  ASSERT_TRUE(Ok(s().fallocate(f.ino, 0, 0, 2 * kPage)));
  EXPECT_TRUE(Fails(s().seek(f.ino, 0, SEEK_DATA), ENXIO));
  EXPECT_EQ(must(s().seek(f.ino, 0, SEEK_HOLE)), 0u);
  ASSERT_TRUE(Ok(write(f.ino, kPage + 10, "y")));
  EXPECT_EQ(must(s().seek(f.ino, 0, SEEK_DATA)), kPage);
  EXPECT_EQ(must(s().seek(f.ino, 0, SEEK_HOLE)), 0u);
  EXPECT_EQ(must(s().seek(f.ino, kPage + 5, SEEK_DATA)), kPage + 5);
  EXPECT_EQ(must(s().seek(f.ino, kPage + 5, SEEK_HOLE)), 2 * kPage);  // the end is a hole
  // Pages fallocated past the end (KEEP_SIZE) are not looked at.
  ASSERT_TRUE(Ok(s().fallocate(f.ino, FALLOC_FL_KEEP_SIZE, 2 * kPage, 2 * kPage)));
  EXPECT_TRUE(Fails(s().seek(f.ino, 2 * kPage, SEEK_DATA), ENXIO));
  EXPECT_TRUE(Fails(s().seek(f.ino, 2 * kPage, SEEK_HOLE), ENXIO));
  // Data then a hole then data, in a sparse file.
  Attr g = create(kRootIno, "g");
  ASSERT_TRUE(Ok(write(g.ino, 0, std::string(kPage, 'a'))));
  ASSERT_TRUE(Ok(write(g.ino, 5 * kPage, "b")));
  EXPECT_EQ(must(s().seek(g.ino, 0, SEEK_HOLE)), kPage);
  EXPECT_EQ(must(s().seek(g.ino, kPage, SEEK_DATA)), 5 * kPage);
  EXPECT_EQ(must(s().seek(g.ino, 5 * kPage, SEEK_HOLE)), 5 * kPage + 1);
  EXPECT_TRUE(Fails(s().seek(g.ino, 5 * kPage + 1, SEEK_DATA), ENXIO));
}

TEST_F(DataTest, PunchedPagesBecomeHoles) {
  ASSERT_TRUE(Ok(write(f.ino, 0, std::string(3 * kPage, 'p'))));
  ASSERT_TRUE(Ok(s().fallocate(f.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, kPage, kPage)));
  EXPECT_EQ(must(s().seek(f.ino, 0, SEEK_HOLE)), kPage);
  EXPECT_EQ(must(s().seek(f.ino, kPage, SEEK_DATA)), 2 * kPage);
}

// --- the quota's edge cases ---------------------------------------------------------------

// Sequential writes of one size into an empty 1 MiB store until the first failure.
struct FillResult {
  std::uint64_t calls = 0, bytes = 0;
  std::vector<std::uint64_t> short_writes;
  std::errc error{};
};

class QuotaTest : public StoreTest {
 protected:
  FillResult fill(Ino ino, std::size_t chunk, std::uint64_t start = 0) {
    FillResult r;
    std::string buf(chunk, 'q');
    std::uint64_t off = start;
    for (;;) {
      auto w = write(ino, off, buf);
      if (!w) {
        r.error = w.error();
        return r;
      }
      if (w.value() != chunk) r.short_writes.push_back(w.value());
      off += w.value();
      r.bytes += w.value();
      ++r.calls;
      if (r.calls > 2 * kMiB) {
        ADD_FAILURE() << "no ENOSPC";
        return r;
      }
    }
  }
};

struct QuotaCase {
  std::size_t chunk;
  std::uint64_t start;
  std::uint64_t calls;                   // successful calls
  std::vector<std::uint64_t> shorts;     // short counts among them
  std::uint64_t end;                     // offset where writing stopped
};

// A failing case reads as its values, not as gtest's dump of its bytes.
void PrintTo(const QuotaCase& c, std::ostream* os) {
  *os << "{chunk " << c.chunk << ", start " << c.start << ", calls " << c.calls << ", shorts "
      << ::testing::PrintToString(c.shorts) << ", end " << c.end << "}";
}

class QuotaEdge : public QuotaTest, public ::testing::WithParamInterface<QuotaCase> {};

TEST_P(QuotaEdge, EnospcStartsAtTheSamePageAsTmpfs) {
  const QuotaCase& c = GetParam();
  Attr f = create(kRootIno, "f");
  FillResult r = fill(f.ino, c.chunk, c.start);
  EXPECT_EQ(r.calls, c.calls);
  EXPECT_EQ(r.short_writes, c.shorts);
  EXPECT_EQ(r.error, std::errc::no_space_on_device);
  EXPECT_EQ(c.start + r.bytes, c.end);
  EXPECT_EQ(attr(f.ino).size, c.end);
  EXPECT_EQ(s().pages_used(), 256u);
  EXPECT_EQ(s().statfs().blocks_free, 0u);
}

// Numbers printed by a size=1M tmpfs for the same loop.
INSTANTIATE_TEST_SUITE_P(
    Tmpfs, QuotaEdge,
    ::testing::Values(QuotaCase{1, 0, 1048576, {}, 1048576},
                      QuotaCase{1024, 0, 1024, {}, 1048576},
                      QuotaCase{4096, 0, 256, {}, 1048576},
                      QuotaCase{1 << 20, 0, 1, {}, 1048576},
                      QuotaCase{3000, 0, 350, {1576}, 1048576},
                      QuotaCase{1 << 20, 100, 1, {1048476}, 1048576},
                      QuotaCase{1 << 20, 5000, 1, {1047672}, 1052672}),
    [](const ::testing::TestParamInfo<QuotaCase>& p) {
      return "chunk" + std::to_string(p.param.chunk) + "_at" + std::to_string(p.param.start);
    });

// The seed's check, at the store: dd bs=1024 count=64K into a 32M channel writes 32768
// records and the 32769th gets ENOSPC (tmpfs prints "32769+0 records in, 32768+0 out").
TEST_F(QuotaTest, SeedDdIn32MiB) {
  reset_store(StoreOptions{.size_bytes = 32 * kMiB});
  Attr f = create(kRootIno, "test.file");
  FillResult r = fill(f.ino, 1024);
  EXPECT_EQ(r.calls, 32768u);
  EXPECT_TRUE(r.short_writes.empty());
  EXPECT_EQ(r.error, std::errc::no_space_on_device);
  EXPECT_EQ(attr(f.ino).size, 33554432u);
}

TEST_F(QuotaTest, ShortWriteIsWholePagesAfterOtherFilesUseSome) {
  Attr p = create(kRootIno, "p");
  ASSERT_EQ(must(write(p.ino, 0, std::string(10 * kPage, 'p'))), 10 * kPage);
  Attr f = create(kRootIno, "f");
  EXPECT_EQ(must(write(f.ino, 0, std::string(kMiB, 'f'))), 1007616u);  // 246 pages
  EXPECT_TRUE(Fails(write(f.ino, 1007616, "x"), ENOSPC));
  EXPECT_EQ(attr(f.ino).size, 1007616u);
}

TEST_F(QuotaTest, WritesWhenFull) {
  Attr f = create(kRootIno, "f");
  const std::uint64_t end = 256 * kPage - 10;  // the last page is held, 10 bytes unused
  ASSERT_EQ(must(write(f.ino, 0, std::string(end, 'q'))), end);
  EXPECT_EQ(s().statfs().blocks_free, 0u);
  // Inside held pages: always succeeds.
  EXPECT_EQ(must(write(f.ino, 0, std::string(2 * kPage, 'o'))), 2 * kPage);
  EXPECT_EQ(must(write(f.ino, end - 10, std::string(20, 'z'))), 20u);  // grows inside the page
  // Straddling the last held page and a new one: what fits, up to the page boundary.
  Attr g = create(kRootIno, "g");
  EXPECT_TRUE(Fails(write(g.ino, 0, "x"), ENOSPC));
  EXPECT_EQ(attr(g.ino).size, 0u);
  ASSERT_TRUE(Ok(truncate(f.ino, 255 * kPage - 10)));  // gives one page back
  EXPECT_EQ(s().statfs().blocks_free, 1u);
  ASSERT_EQ(must(write(g.ino, 0, std::string(kPage - 10, 'g'))), kPage - 10);
  EXPECT_EQ(must(write(g.ino, kPage - 10, std::string(20, 'g'))), 10u);
  EXPECT_TRUE(Fails(write(g.ino, kPage, std::string(20, 'g')), ENOSPC));
  // A write far beyond the end into a hole: ENOSPC, the size stays.
  EXPECT_TRUE(Fails(write(f.ino, 300 * kPage, "h"), ENOSPC));
  EXPECT_EQ(attr(f.ino).size, 255 * kPage - 10);
  EXPECT_EQ(s().pages_used(), 256u);
}

TEST_F(QuotaTest, TruncateAndPunchGiveTheQuotaBack) {
  Attr f = create(kRootIno, "f");
  ASSERT_EQ(must(write(f.ino, 0, std::string(kMiB, 'x'))), kMiB);
  ASSERT_TRUE(Ok(truncate(f.ino, kPage)));
  EXPECT_EQ(s().statfs().blocks_free, 255u);
  Attr g = create(kRootIno, "g");
  EXPECT_EQ(must(write(g.ino, 0, std::string(kMiB, 'y'))), 255 * kPage);
  ASSERT_TRUE(Ok(s().fallocate(g.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 100 * kPage)));
  EXPECT_EQ(s().statfs().blocks_free, 100u);
  EXPECT_EQ(must(write(f.ino, kPage, std::string(kMiB, 'z'))), 100 * kPage);
  // Unlinking gives everything back.
  ASSERT_TRUE(Ok(s().unlink(kRootIno, "f")));
  ASSERT_TRUE(Ok(s().unlink(kRootIno, "g")));
  EXPECT_EQ(s().pages_used(), 0u);
  EXPECT_EQ(s().statfs().blocks_free, 256u);
}

TEST_F(QuotaTest, FreedPagesReadAsZerosWhenReused) {
  Attr f = create(kRootIno, "f");
  ASSERT_EQ(must(write(f.ino, 0, std::string(kMiB, 'S'))), kMiB);
  ASSERT_TRUE(Ok(s().unlink(kRootIno, "f")));
  Attr g = create(kRootIno, "g");
  ASSERT_TRUE(Ok(s().fallocate(g.ino, 0, 0, kMiB)));
  EXPECT_TRUE(all_zero(read(g.ino, 0, kMiB)));
  ASSERT_TRUE(Ok(write(g.ino, kMiB - 1, "e")));  // a page written in part
  std::string back = read(g.ino, kMiB - kPage, kPage);
  EXPECT_TRUE(all_zero(std::string_view(back).substr(0, kPage - 1)));
}

// --- unlinked but open --------------------------------------------------------------------

TEST_F(DataTest, UnlinkedOpenFileKeepsItsDataUntilRelease) {
  ASSERT_TRUE(Ok(write(f.ino, 0, std::string(3 * kPage, 'u'))));
  ASSERT_TRUE(Ok(s().open(f.ino)));
  ASSERT_TRUE(Ok(s().open(f.ino)));
  ASSERT_TRUE(Ok(s().unlink(kRootIno, "f")));  // no lookup held: only the handles keep it
  EXPECT_EQ(names(kRootIno), std::vector<std::string>{});
  EXPECT_EQ(read(f.ino, 0, 3 * kPage), std::string(3 * kPage, 'u'));
  EXPECT_EQ(must(write(f.ino, 3 * kPage, "more")), 4u);
  EXPECT_EQ(s().pages_used(), 4u);
  EXPECT_EQ(s().inodes_used(), 2u);
  EXPECT_EQ(attr(f.ino).nlink, 0u);
  s().release(f.ino);
  EXPECT_EQ(read(f.ino, 3 * kPage, 10), "more");
  s().release(f.ino);
  EXPECT_FALSE(s().getattr(f.ino));
  EXPECT_EQ(s().pages_used(), 0u);
  EXPECT_EQ(s().inodes_used(), 1u);
}

TEST_F(DataTest, ReleaseOfALinkedFileFreesNothing) {
  ASSERT_TRUE(Ok(write(f.ino, 0, "kept")));
  ASSERT_TRUE(Ok(s().open(f.ino)));
  s().release(f.ino);
  EXPECT_EQ(read(f.ino, 0, 10), "kept");
  // Replaced by a rename while open: still readable until released.
  Attr g = create(kRootIno, "g");
  ASSERT_TRUE(Ok(s().open(f.ino)));
  ASSERT_TRUE(Ok(s().rename(kRootIno, "g", kRootIno, "f", 0)));
  EXPECT_EQ(read(f.ino, 0, 10), "kept");
  s().release(f.ino);
  EXPECT_FALSE(s().getattr(f.ino));
  EXPECT_TRUE(Ok(s().getattr(g.ino)));
}

}  // namespace
}  // namespace hostchanfs::shm::testing
