// The channel spec, table-driven: each input with its exact outcome or one-line message.
#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "mountctl/spec.hpp"

namespace hostchanfs::mountctl {
namespace {

constexpr std::uint64_t kGiB = 1ull << 30;
// 8 GiB of memory, 6 GiB available: the maximum is half the total, 4 GiB.
const MemoryInfo kMem{8 * kGiB, 6 * kGiB};

// A size as the check counts it: with its metadata region.
std::string held(std::uint64_t bytes) { return std::to_string(bytes + channel_metadata_bytes(bytes)); }

struct Case {
  std::string text;
  std::optional<ChannelSpec> want;  // or the message:
  std::string message;
};

class SpecTable : public ::testing::TestWithParam<Case> {};

TEST_P(SpecTable, ParsesOrRefusesWithItsMessage) {
  const Case& c = GetParam();
  auto got = parse_spec(c.text, kMem);
  if (c.want) {
    ASSERT_TRUE(got) << got.error().message;
    EXPECT_EQ(got.value(), *c.want);
  } else {
    ASSERT_FALSE(got) << "accepted: " << got.value().to_string();
    EXPECT_EQ(got.error().kind, Error::Kind::kBadInput);
    EXPECT_EQ(got.error().exit_code(), 2);
    EXPECT_EQ(got.error().message, c.message);
    EXPECT_EQ(got.error().message.find('\n'), std::string::npos);
  }
}

ChannelSpec spec(std::string host, std::string container, bool ro, std::uint64_t size) {
  return ChannelSpec{std::move(host), std::move(container), ro, size};
}

const std::string kFormat =
    "want <host path>:<container path>:<rw|ro>:<size> (4 fields separated by ':')";

INSTANTIATE_TEST_SUITE_P(
    Good, SpecTable,
    ::testing::Values(
        Case{"/testdir:/testdir:rw:32M", spec("/testdir", "/testdir", false, 32ull << 20), ""},
        Case{"/a:/b:ro:32m", spec("/a", "/b", true, 32ull << 20), ""},
        Case{"/a:/b::", spec("/a", "/b", false, 64ull << 20), ""},
        Case{"/a:/b:ro:", spec("/a", "/b", true, 64ull << 20), ""},
        Case{"/a:/b::4k", spec("/a", "/b", false, 4096), ""},
        Case{"/a:/b:rw:4096", spec("/a", "/b", false, 4096), ""},
        Case{"/a:/b:rw:4KB", spec("/a", "/b", false, 4096), ""},
        Case{"/a:/b:rw:4kb", spec("/a", "/b", false, 4096), ""},
        Case{"/a:/b:rw:32mB", spec("/a", "/b", false, 32ull << 20), ""},
        Case{"/a:/b:rw:1g", spec("/a", "/b", false, kGiB), ""},
        Case{"/a:/b:rw:3GB", spec("/a", "/b", false, 3 * kGiB), ""},  // 3.5 GiB with its metadata
        Case{"//a/./b/:/c/../d/:rw:1M", spec("/a/b", "/d", false, 1ull << 20), ""},
        Case{"/a/../../x:/y//z/.:rw:1M", spec("/x", "/y/z", false, 1ull << 20), ""}));

INSTANTIATE_TEST_SUITE_P(
    Bad, SpecTable,
    ::testing::Values(
        Case{"/a:/b:rw", std::nullopt, "bad host channel format \"/a:/b:rw\": " + kFormat},
        Case{"/a:/b:rw:1m:x", std::nullopt, "bad host channel format \"/a:/b:rw:1m:x\": " + kFormat},
        Case{"", std::nullopt, "bad host channel format \"\": " + kFormat},
        Case{"/testdir", std::nullopt, "bad host channel format \"/testdir\": " + kFormat},
        Case{"a:/b:rw:1m", std::nullopt,
             "host path \"a\" is not an absolute path: give a path that starts with /"},
        Case{":/b:rw:1m", std::nullopt,
             "host path \"\" is not an absolute path: give a path that starts with /"},
        Case{"/a:b/c:rw:1m", std::nullopt,
             "container path \"b/c\" is not an absolute path: give a path that starts with /"},
        Case{"//:/b:rw:1m", std::nullopt,
             "host path \"//\" is the root directory: give a directory below /"},
        Case{"/a:/x/..:rw:1m", std::nullopt,
             "container path \"/x/..\" is the root directory: give a directory below /"},
        Case{"/a:/b:rx:1m", std::nullopt,
             "mode \"rx\" is neither rw nor ro: give rw, ro, or leave it empty for rw"},
        Case{"/a:/b:RW:1m", std::nullopt,
             "mode \"RW\" is neither rw nor ro: give rw, ro, or leave it empty for rw"},
        Case{"/a:/b:rw:12q", std::nullopt,
             "size \"12q\" is not a size: give bytes or a number with k, m or g (e.g. 32M)"},
        Case{"/a:/b:rw:1.5g", std::nullopt,
             "size \"1.5g\" is not a size: give bytes or a number with k, m or g (e.g. 32M)"},
        Case{"/a:/b:rw:-1", std::nullopt,
             "size \"-1\" is not a size: give bytes or a number with k, m or g (e.g. 32M)"},
        Case{"/a:/b:rw:1t", std::nullopt,
             "size \"1t\" is not a size: give bytes or a number with k, m or g (e.g. 32M)"},
        Case{"/a:/b:rw:99999999999999999999", std::nullopt,
             "size \"99999999999999999999\" is not a size: give bytes or a number with k, m or "
             "g (e.g. 32M)"},
        Case{"/a:/b:rw:4095", std::nullopt,
             "size \"4095\" (4095 bytes) is below the minimum of one 4 KiB page (4096 bytes)"},
        Case{"/a:/b:rw:0", std::nullopt,
             "size \"0\" (0 bytes) is below the minimum of one 4 KiB page (4096 bytes)"},
        Case{"/a:/b:rw:5g", std::nullopt,
             "size \"5g\" (5368709120 bytes, " + held(5 * kGiB) +
                 " with its metadata) is above half of the host's memory (4294967296 bytes)"},
        // Half the memory as data alone, over it with the metadata region beside it.
        Case{"/a:/b:rw:4g", std::nullopt,
             "size \"4g\" (4294967296 bytes, " + held(4 * kGiB) +
                 " with its metadata) is above half of the host's memory (4294967296 bytes)"},
        // Paths end up in JSON, log lines and the `ls` table: UTF-8 only, no control
        // characters (shown escaped, never raw).
        Case{"/tmp/\xff:/b:rw:1m", std::nullopt,
             "host path \"/tmp/\\xff\" is not UTF-8 (byte 0xff at offset 5): give a path in UTF-8 "
             "without control characters"},
        Case{"/tmp/a\nb:/b:rw:1m", std::nullopt,
             "host path \"/tmp/a\\x0ab\" holds a control character (U+000A at offset 6): give a "
             "path in UTF-8 without control characters"},
        Case{"/a:/b\x1b[2J:rw:1m", std::nullopt,
             "container path \"/b\\x1b[2J\" holds a control character (U+001B at offset 2): give "
             "a path in UTF-8 without control characters"},
        Case{"/a:/b:r\xc3w:1m", std::nullopt,
             "mode \"r\\xc3w\" is neither rw nor ro: give rw, ro, or leave it empty for rw"},
        Case{"/proc/x:/b:rw:1m", std::nullopt,
             "host path \"/proc/x\" is in /proc, the kernel's own file system: give a path "
             "elsewhere"},
        Case{"/sys:/b:rw:1m", std::nullopt,
             "host path \"/sys\" is in /sys, the kernel's own file system: give a path elsewhere"},
        Case{"//sys/./fs/..:/b:rw:1m", std::nullopt,
             "host path \"/sys\" is in /sys, the kernel's own file system: give a path elsewhere"}));

TEST(Spec, UnicodePathsAndLookalikesOfKernelTreesAreFine) {
  EXPECT_TRUE(parse_spec("/tmp/caf\xc3\xa9:/b:rw:1m", kMem));
  EXPECT_TRUE(parse_spec("/procfoo:/b:rw:1m", kMem));
  EXPECT_TRUE(parse_spec("/a:/proc/x:rw:1m", kMem)) << "inside a container, /proc is its own";
}

TEST(Spec, SizeAboveAvailableMemoryIsRefused) {
  MemoryInfo tight{8 * kGiB, 1 * kGiB};
  auto got = parse_spec("/a:/b:rw:2G", tight);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().message, "size \"2G\" (2147483648 bytes, " + held(2 * kGiB) +
                                     " with its metadata) is above the host's available memory "
                                     "(1073741824 bytes)");
  EXPECT_FALSE(parse_spec("/a:/b:rw:1G", tight)) << "all of it as data, and its metadata beside";
  EXPECT_TRUE(parse_spec("/a:/b:rw:768M", tight));
}

TEST(Spec, CanonicalTextParsesBackToTheSameSpec) {
  auto first = parse_spec("//a/./b/:/c:ro:32M", kMem);
  ASSERT_TRUE(first);
  EXPECT_EQ(first.value().to_string(), "/a/b:/c:ro:33554432");
  auto again = parse_spec(first.value().to_string(), kMem);
  ASSERT_TRUE(again);
  EXPECT_EQ(again.value(), first.value());
}

TEST(Spec, ReadsThisHostsMemory) {
  auto mem = MemoryInfo::read();
  ASSERT_TRUE(mem);
  EXPECT_GT(mem.value().total_bytes, 0u);
  EXPECT_LE(mem.value().available_bytes, mem.value().total_bytes);
  EXPECT_TRUE(parse_spec("/a:/b:rw:32M"));
}

TEST(CleanPath, Table) {
  EXPECT_EQ(clean_path("/"), "/");
  EXPECT_EQ(clean_path("//"), "/");
  EXPECT_EQ(clean_path("//a/./b/"), "/a/b");
  EXPECT_EQ(clean_path("/a/../b"), "/b");
  EXPECT_EQ(clean_path("/../../a"), "/a");
  EXPECT_EQ(clean_path("/a/b/.."), "/a");
  EXPECT_EQ(clean_path("/a.b/..c/"), "/a.b/..c");
}

}  // namespace
}  // namespace hostchanfs::mountctl
