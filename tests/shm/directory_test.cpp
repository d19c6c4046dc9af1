// Directory: entries by name (hashed), and readdir cookies that grow, are never reused and
// keep an entry's place through a rename over it; every change in a tx.
#include <sys/stat.h>

#include <string>
#include <utility>
#include <vector>

#include "tests/shm/parts_fixture.hpp"

namespace hostchanfs::shm::testing {
namespace {

class DirectoryTest : public PartsTest {
 protected:
  using Listed = std::vector<std::pair<std::string, std::uint64_t>>;  // name, cookie

  void add(std::string_view name, Ino ino, mode_t mode) {
    in_tx([&](Tx& tx) { ASSERT_TRUE(dirs_.add(tx, kRootIno, root(), name, ino, mode)); });
  }
  bool remove(std::string_view name) {
    auto slot = dirs_.find(kRootIno, name);
    if (!slot) return false;
    in_tx([&](Tx& tx) { dirs_.remove(tx, *slot); });
    return true;
  }
  Listed list(std::uint64_t from = 0) const {
    Listed out;
    dirs_.list_from(kRootIno, from, [&](const DirentRecord& e) {
      out.emplace_back(std::string(name_of(e)), e.cookie);
      return true;
    });
    return out;
  }
  InodeRecord& root() { return *inodes_.find(kRootIno); }
};

TEST_F(DirectoryTest, EntriesGetCookiesFromThreeInOrder) {
  EXPECT_TRUE(dirs_.empty(kRootIno));
  add("b", 10, S_IFREG | 0644);
  add("a", 11, S_IFDIR | 0755);
  EXPECT_FALSE(dirs_.empty(kRootIno));
  EXPECT_EQ(list(), Listed({{"b", 3}, {"a", 4}}));  // cookie order, not name order
  auto a = dirs_.find(kRootIno, "a");
  ASSERT_TRUE(a);
  EXPECT_EQ(dirs_.entry(*a).ino, 11u);
  EXPECT_EQ(type_of(dirs_.entry(*a)), static_cast<mode_t>(S_IFDIR));  // the type bits only
  EXPECT_FALSE(dirs_.find(kRootIno, "c"));
  EXPECT_FALSE(dirs_.find(2, "a"));  // another directory's names are its own
}

TEST_F(DirectoryTest, CookiesAreNeverReused) {
  add("x", 10, S_IFREG);
  add("y", 11, S_IFREG);
  EXPECT_TRUE(remove("y"));
  EXPECT_FALSE(remove("y"));
  add("y", 12, S_IFREG);
  EXPECT_EQ(list(), Listed({{"x", 3}, {"y", 5}}));
}

TEST_F(DirectoryTest, AListingResumesAtACookieEvenOfARemovedEntry) {
  for (const char* name : {"a", "b", "c", "d"}) add(name, 10, S_IFREG);
  EXPECT_EQ(list(5), Listed({{"c", 5}, {"d", 6}}));
  EXPECT_TRUE(remove("c"));
  EXPECT_EQ(list(5), Listed({{"d", 6}}));
  EXPECT_EQ(list(0), list(kFirstCookie));  // offsets below the first cookie: from the start
  EXPECT_EQ(list(7), Listed{});
}

TEST_F(DirectoryTest, ARetargetedEntryKeepsItsNameAndCookie) {
  add("a", 10, S_IFREG);
  add("b", 11, S_IFREG);
  in_tx([&](Tx& tx) { dirs_.retarget(tx, *dirs_.find(kRootIno, "a"), 20, S_IFDIR | 0700); });
  EXPECT_EQ(list(), Listed({{"a", 3}, {"b", 4}}));
  EXPECT_EQ(dirs_.entry(*dirs_.find(kRootIno, "a")).ino, 20u);
  EXPECT_EQ(type_of(dirs_.entry(*dirs_.find(kRootIno, "a"))), static_cast<mode_t>(S_IFDIR));
}

TEST_F(DirectoryTest, AListingStopsWhenTheCallerSaysSo) {
  for (const char* name : {"a", "b", "c"}) add(name, 10, S_IFREG);
  int seen = 0;
  dirs_.list_from(kRootIno, 0, [&](const DirentRecord&) { return ++seen < 2; });
  EXPECT_EQ(seen, 2);
}

TEST_F(DirectoryTest, AnAddThatRollsBackLeavesNothing) {
  {
    Tx tx(region_);
    ASSERT_TRUE(dirs_.add(tx, kRootIno, root(), "gone", 10, S_IFREG));
    EXPECT_TRUE(dirs_.find(kRootIno, "gone"));
  }
  EXPECT_FALSE(dirs_.find(kRootIno, "gone"));
  EXPECT_TRUE(dirs_.empty(kRootIno));
  add("kept", 10, S_IFREG);
  EXPECT_EQ(list(), Listed({{"kept", 3}}));  // the cookie rolled back too
}

}  // namespace
}  // namespace hostchanfs::shm::testing
