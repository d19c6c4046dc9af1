// sys/dirs.hpp: mkdir -p that records what it made, all or nothing.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

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

mode_t mode_of(const std::string& path) {
  struct stat st {};
  ::lstat(path.c_str(), &st);
  return st.st_mode & 07777;
}

TEST(MakeDirs, MakesWhatIsMissingAndSaysWhatItMade) {
  TempDir dir;
  std::string base = dir.path();
  mode_t old_umask = ::umask(022);
  auto made = make_dirs(base + "/a/b/c", 0755, 0700);
  ::umask(old_umask);
  ASSERT_TRUE(made);
  EXPECT_EQ(made.value(), (std::vector<std::string>{base + "/a", base + "/a/b", base + "/a/b/c"}));
  EXPECT_EQ(mode_of(base + "/a/b"), 0755u);
  EXPECT_EQ(mode_of(base + "/a/b/c"), 0700u) << "the last one gets its own mode";

  auto again = make_dirs(base + "/a/b/d", 0755, 0755);
  ASSERT_TRUE(again);
  EXPECT_EQ(again.value(), std::vector<std::string>{base + "/a/b/d"}) << "what existed is not its";

  remove_dirs(made.value());
  EXPECT_TRUE(exists(base + "/a/b/d")) << "a directory that is not empty stays";
  EXPECT_FALSE(exists(base + "/a/b/c"));
}

TEST(MakeDirs, AFileInThePathIsNotADirectoryAndNothingIsLeft) {
  TempDir dir;
  std::string base = dir.path();
  ASSERT_TRUE(make_dirs(base + "/x", 0755, 0755));
  std::ofstream(base + "/x/file") << "f";
  auto made = make_dirs(base + "/new/deeper/../../x/file/below", 0755, 0755);
  // "new" and "new/deeper" were made before the file stopped it: they go again.
  ASSERT_FALSE(made);
  EXPECT_EQ(made.error().error, std::errc::not_a_directory);
  EXPECT_EQ(made.error().path, base + "/new/deeper/../../x/file");
  EXPECT_FALSE(exists(base + "/new"));
}

}  // namespace
}  // namespace hostchanfs
