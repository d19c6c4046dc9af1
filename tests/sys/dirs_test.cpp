// sys/dirs.hpp: walking and making directories by descriptor, never following a symlink,
// and removing exactly the directories that were made.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "sys/dirs.hpp"
#include "tests/support/temp_dir.hpp"

namespace hostchanfs {
namespace {

using testing::TempDir;

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

struct stat stat_of(const std::string& path) {
  struct stat st {};
  ::lstat(path.c_str(), &st);
  return st;
}

std::vector<std::string> paths_of(const std::vector<MadeDir>& made) {
  std::vector<std::string> out;
  for (const auto& d : made) out.push_back(d.path);
  return out;
}

TEST(MakeDirs, MakesWhatIsMissingAndSaysWhatItMade) {
  TempDir dir;
  std::string base = dir.path();
  mode_t old_umask = ::umask(022);
  auto made = make_dirs(base + "/a/b/c", 0755, 0700);
  ::umask(old_umask);
  ASSERT_TRUE(made);
  EXPECT_EQ(paths_of(made.value().made), (std::vector<std::string>{base + "/a", base + "/a/b", base + "/a/b/c"}));
  EXPECT_EQ(made.value().made[1].id, file_id(stat_of(base + "/a/b"))) << "recorded by what it is";
  EXPECT_EQ(stat_of(base + "/a/b").st_mode & 07777, 0755u);
  EXPECT_EQ(stat_of(base + "/a/b/c").st_mode & 07777, 0700u) << "the last one gets its own mode";
  struct stat by_fd {}, parent_fd {};
  ASSERT_EQ(::fstat(made.value().dir.get(), &by_fd), 0);
  ASSERT_EQ(::fstat(made.value().parent.get(), &parent_fd), 0);
  EXPECT_EQ(file_id(by_fd), file_id(stat_of(base + "/a/b/c")));
  EXPECT_EQ(file_id(parent_fd), file_id(stat_of(base + "/a/b")));

  auto again = make_dirs(base + "/a/b/d", 0755, 0755);
  ASSERT_TRUE(again);
  EXPECT_EQ(paths_of(again.value().made), std::vector<std::string>{base + "/a/b/d"}) << "what existed is not its";

  auto stayed = remove_dirs(made.value().made);
  EXPECT_EQ(paths_of(stayed), (std::vector<std::string>{base + "/a/b", base + "/a"}));
  EXPECT_TRUE(exists(base + "/a/b/d")) << "a directory that is not empty stays";
  EXPECT_FALSE(exists(base + "/a/b/c"));
}

TEST(MakeDirs, ASymlinkAnywhereStopsTheWalk) {
  TempDir dir;
  std::string base = dir.path();
  ASSERT_EQ(::mkdir((base + "/real").c_str(), 0755), 0);
  ASSERT_EQ(::symlink((base + "/real").c_str(), (base + "/link").c_str()), 0);
  auto made = make_dirs(base + "/link/x/y", 0755, 0755);
  ASSERT_FALSE(made);
  EXPECT_EQ(made.error().error, std::errc::too_many_symbolic_link_levels);
  EXPECT_EQ(made.error().path, base + "/link");
  EXPECT_FALSE(exists(base + "/real/x")) << "nothing was made where the symlink points";
  auto opened = open_dir_nofollow(base + "/link");
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().error, std::errc::too_many_symbolic_link_levels);
  // A dangling symlink is a symlink too, not a missing directory.
  ASSERT_EQ(::symlink("/nonexistent", (base + "/dangling").c_str()), 0);
  auto dangling = make_dirs(base + "/dangling/x", 0755, 0755);
  ASSERT_FALSE(dangling);
  EXPECT_EQ(dangling.error().error, std::errc::too_many_symbolic_link_levels);
}

TEST(MakeDirs, AFileInThePathIsNotADirectoryAndAnUncleanPathIsRefused) {
  TempDir dir;
  std::string base = dir.path();
  ASSERT_TRUE(make_dirs(base + "/x", 0755, 0755));
  std::ofstream(base + "/x/file") << "f";
  auto made = make_dirs(base + "/x/file/below", 0755, 0755);
  ASSERT_FALSE(made);
  EXPECT_EQ(made.error().error, std::errc::not_a_directory);
  EXPECT_EQ(made.error().path, base + "/x/file");
  for (const std::string& bad : std::vector<std::string>{"relative", base + "/a/../b", base + "//a", base + "/a/", base + "/./a"}) {
    auto refused = make_dirs(bad, 0755, 0755);
    ASSERT_FALSE(refused) << bad;
    EXPECT_EQ(refused.error().error, std::errc::invalid_argument) << bad;
  }
  EXPECT_FALSE(exists(base + "/a"));
}

TEST(RemoveDirs, LeavesWhatWasPutInItsPlace) {
  TempDir dir;
  std::string base = dir.path();
  auto made = make_dirs(base + "/d", 0755, 0755);
  ASSERT_TRUE(made);
  // Another directory under the same name: not the one that was made.
  ASSERT_EQ(::rmdir((base + "/d").c_str()), 0);
  ASSERT_EQ(::mkdir((base + "/d").c_str(), 0755), 0);
  EXPECT_EQ(remove_dirs(made.value().made).size(), 1u);
  EXPECT_TRUE(exists(base + "/d"));

  // A parent swapped for a symlink to where the made directory went: not followed.
  auto deep = make_dirs(base + "/p/q", 0755, 0755);
  ASSERT_TRUE(deep);
  ASSERT_EQ(std::rename((base + "/p").c_str(), (base + "/moved").c_str()), 0);
  ASSERT_EQ(::symlink((base + "/moved").c_str(), (base + "/p").c_str()), 0);
  EXPECT_EQ(remove_dirs(deep.value().made).size(), 2u) << "q behind the symlink and p (moved) stay";
  EXPECT_TRUE(exists(base + "/moved/q"));
}

}  // namespace
}  // namespace hostchanfs
