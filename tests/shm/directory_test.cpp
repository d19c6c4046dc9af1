// Directory: entries by name, and readdir cookies that grow, are never reused and keep an
// entry's place through a rename over it.
#include <sys/stat.h>

#include <string>
#include <utility>
#include <vector>

#include "shm/directory.hpp"
#include "tests/shm/parts_fixture.hpp"

namespace hostchanfs::shm::testing {
namespace {

class DirectoryTest : public ::testing::Test {
 protected:
  using Listed = std::vector<std::pair<std::string, std::uint64_t>>;  // name, cookie

  Listed list(std::uint64_t from = 0) const {
    Listed out;
    dir_.list_from(from, [&](const DirEntryRec& e) {
      out.emplace_back(std::string(view(e.name)), e.cookie);
      return true;
    });
    return out;
  }

  HeapSegment segment_;
  Directory& dir_ = *make_in<Directory>(segment_.get(), alloc_in<DirEntryRec>(segment_.get()));
};

TEST_F(DirectoryTest, EntriesGetCookiesFromThreeInOrder) {
  EXPECT_TRUE(dir_.empty());
  dir_.add("b", 10, S_IFREG | 0644);
  dir_.add("a", 11, S_IFDIR | 0755);
  EXPECT_FALSE(dir_.empty());
  EXPECT_EQ(list(), Listed({{"b", 3}, {"a", 4}}));  // cookie order, not name order
  const DirEntryRec* a = dir_.find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->ino, 11u);
  EXPECT_EQ(a->type, static_cast<std::uint32_t>(S_IFDIR));  // the type bits only
  EXPECT_EQ(dir_.find("c"), nullptr);
}

TEST_F(DirectoryTest, CookiesAreNeverReused) {
  dir_.add("x", 10, S_IFREG);
  dir_.add("y", 11, S_IFREG);
  EXPECT_TRUE(dir_.remove("y"));
  EXPECT_FALSE(dir_.remove("y"));
  dir_.add("y", 12, S_IFREG);
  EXPECT_EQ(list(), Listed({{"x", 3}, {"y", 5}}));
}

TEST_F(DirectoryTest, AListingResumesAtACookieEvenOfARemovedEntry) {
  for (const char* name : {"a", "b", "c", "d"}) dir_.add(name, 10, S_IFREG);
  EXPECT_EQ(list(5), Listed({{"c", 5}, {"d", 6}}));
  EXPECT_TRUE(dir_.remove("c"));
  EXPECT_EQ(list(5), Listed({{"d", 6}}));
  EXPECT_EQ(list(0), list(kFirstCookie));  // offsets below the first cookie: from the start
  EXPECT_EQ(list(7), Listed{});
}

TEST_F(DirectoryTest, ARetargetedEntryKeepsItsNameAndCookie) {
  dir_.add("a", 10, S_IFREG);
  dir_.add("b", 11, S_IFREG);
  dir_.retarget(*dir_.find("a"), 20, S_IFDIR | 0700);
  EXPECT_EQ(list(), Listed({{"a", 3}, {"b", 4}}));
  EXPECT_EQ(dir_.find("a")->ino, 20u);
  EXPECT_EQ(dir_.find("a")->type, static_cast<std::uint32_t>(S_IFDIR));
}

TEST_F(DirectoryTest, AListingStopsWhenTheCallerSaysSo) {
  for (const char* name : {"a", "b", "c"}) dir_.add(name, 10, S_IFREG);
  int seen = 0;
  dir_.list_from(0, [&](const DirEntryRec&) { return ++seen < 2; });
  EXPECT_EQ(seen, 2);
}

}  // namespace
}  // namespace hostchanfs::shm::testing
