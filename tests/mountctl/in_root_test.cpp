// Resolving a container path inside a root: symlinks and ".." never leave it, missing
// directories are made inside it. Plain directories, no mounts: runs anywhere.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "mountctl/in_root.hpp"
#include "tests/support/scoped_mounts.hpp"

namespace hostchanfs::mountctl {
namespace {

namespace fsys = std::filesystem;

class InRoot : public ::testing::Test {
 protected:
  void SetUp() override {
    root_fd_ = UniqueFd(::open(root_.path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(root_fd_);
  }
  void TearDown() override {
    std::error_code ec;
    for (const auto& e : fsys::directory_iterator(root_.path(), ec)) fsys::remove_all(e.path(), ec);
    for (const auto& e : fsys::directory_iterator(outside_.path(), ec)) fsys::remove_all(e.path(), ec);
  }
  // The inode an fd names equals the inode at `path` (on the host).
  static bool same_inode(int fd, const std::string& path) {
    struct stat a {}, b {};
    return ::fstat(fd, &a) == 0 && ::stat(path.c_str(), &b) == 0 && a.st_ino == b.st_ino &&
           a.st_dev == b.st_dev;
  }
  std::string in_root(const std::string& rel) const { return root_.path() + rel; }

  testing::TempDir root_{"inroot"};
  testing::TempDir outside_{"outside"};
  UniqueFd root_fd_;
};

TEST_F(InRoot, ExistingPathIsOpened) {
  fsys::create_directories(in_root("/a/b"));
  auto fd = open_dir_in_root(root_fd_.get(), "/a/b", false);
  ASSERT_TRUE(fd);
  EXPECT_TRUE(same_inode(fd.value().get(), in_root("/a/b")));
}

TEST_F(InRoot, MissingDirectoriesAreMadeOnlyWhenAsked) {
  auto none = open_dir_in_root(root_fd_.get(), "/x/y/z", false);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error(), std::errc::no_such_file_or_directory);
  EXPECT_FALSE(fsys::exists(in_root("/x")));
  auto fd = open_dir_in_root(root_fd_.get(), "/x/y/z", true);
  ASSERT_TRUE(fd);
  EXPECT_TRUE(same_inode(fd.value().get(), in_root("/x/y/z")));
}

TEST_F(InRoot, AbsoluteSymlinkToAnOutsideDirectoryLandsInside) {
  // link -> the real, existing directory outside the root: inside the root it means
  // <root>/<that path>, which is made there; the outside directory is never touched.
  fsys::create_directory_symlink(outside_.path(), in_root("/link"));
  auto fd = open_dir_in_root(root_fd_.get(), "/link/chan", true);
  ASSERT_TRUE(fd);
  EXPECT_TRUE(same_inode(fd.value().get(), in_root(outside_.path() + "/chan")));
  EXPECT_FALSE(fsys::exists(outside_.path() + "/chan"));
}

TEST_F(InRoot, RelativeSymlinkAndDotDotStopAtTheRoot) {
  fsys::create_directories(in_root("/a"));
  fsys::create_directory_symlink("../../../../..", in_root("/a/up"));
  auto fd = open_dir_in_root(root_fd_.get(), "/a/up/../../etc/chan", true);
  ASSERT_TRUE(fd);
  EXPECT_TRUE(same_inode(fd.value().get(), in_root("/etc/chan")));
  // The same, once everything exists: the kernel's RESOLVE_IN_ROOT path.
  auto again = open_dir_in_root(root_fd_.get(), "/a/up/../../etc/chan", false);
  ASSERT_TRUE(again);
  EXPECT_TRUE(same_inode(again.value().get(), in_root("/etc/chan")));
}

TEST_F(InRoot, DanglingRelativeSymlinkIsFollowedInside) {
  fsys::create_directory_symlink("target/deeper", in_root("/dangling"));
  auto fd = open_dir_in_root(root_fd_.get(), "/dangling/chan", true);
  ASSERT_TRUE(fd);
  EXPECT_TRUE(same_inode(fd.value().get(), in_root("/target/deeper/chan")));
}

TEST_F(InRoot, FileComponentIsNotADirectory) {
  { std::ofstream(in_root("/file")) << "x"; }
  auto fd = open_dir_in_root(root_fd_.get(), "/file/chan", true);
  ASSERT_FALSE(fd);
  EXPECT_EQ(fd.error(), std::errc::not_a_directory);
}

TEST_F(InRoot, SymlinkLoopEndsWithEloop) {
  fsys::create_directory_symlink("/loop2", in_root("/loop1"));
  fsys::create_directory_symlink("/loop1", in_root("/loop2"));
  auto fd = open_dir_in_root(root_fd_.get(), "/loop1/chan", true);
  ASSERT_FALSE(fd);
  EXPECT_EQ(fd.error(), std::errc::too_many_symbolic_link_levels);
}

}  // namespace
}  // namespace hostchanfs::mountctl
