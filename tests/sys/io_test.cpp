// sys/unix_socket.hpp, sys/mount.hpp, sys/exit_status.hpp, sys/errno_text.hpp and
// sys/read_file.hpp.
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "sys/errno_text.hpp"
#include "sys/exit_status.hpp"
#include "sys/mount.hpp"
#include "sys/read_file.hpp"
#include "sys/unix_socket.hpp"
#include "tests/support/fuse_required.hpp"
#include "tests/support/mount_namespace.hpp"
#include "tests/support/mounts.hpp"
#include "tests/support/temp_dir.hpp"

namespace hostchanfs {
namespace {

using testing::TempDir;

TEST(UnixSocket, ListenAndConnectAtAPath) {
  TempDir dir;
  std::string path = dir.path() + "/sock";
  auto listener = listen_unix(path, 0600, 4);
  ASSERT_TRUE(listener) << errno_text(listener.error());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto address = unix_address(path);
  ASSERT_TRUE(address);
  auto client = connect_unix(address.value());
  ASSERT_TRUE(client) << errno_text(client.error());
  UniqueFd accepted(::accept4(listener.value().get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(accepted);
  ASSERT_EQ(::write(client.value().get(), "hi", 2), 2);
  char buf[2];
  ASSERT_EQ(::read(accepted.get(), buf, 2), 2);
  EXPECT_EQ(std::string(buf, 2), "hi");
}

TEST(UnixSocket, APathTooLongForSunPathIsRefused) {
  std::string path = "/" + std::string(sizeof(sockaddr_un::sun_path), 'x');
  auto address = unix_address(path);
  ASSERT_FALSE(address);
  EXPECT_EQ(address.error(), std::errc::filename_too_long);
  EXPECT_FALSE(listen_unix(path, 0600, 1));
  EXPECT_TRUE(unix_address(path.substr(0, sizeof(sockaddr_un::sun_path) - 1)));
}

TEST(Mount, TheOwnerUnmountsUnlessReleased) {
  HOSTCHANFS_REQUIRE(::geteuid() == 0, "needs root");
  testing::PrivateMountNamespace ns;
  TempDir dir;
  auto mount_tmpfs = [&](const std::string& at) {
    ::mkdir(at.c_str(), 0755);
    return ::mount("tmpfs", at.c_str(), "tmpfs", 0, "size=64k") == 0;
  };
  std::string owned = dir.path() + "/owned", kept = dir.path() + "/kept";
  ASSERT_TRUE(mount_tmpfs(owned) && mount_tmpfs(kept));
  {
    MountOwner a(owned), b(kept);
    b.release();
  }
  EXPECT_EQ(testing::mounts_under(dir.path()), std::vector<std::string>{kept});
  auto busy = ::open((kept + "/.").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(busy, 0);
  ASSERT_EQ(::chdir(kept.c_str()), 0);  // a busy mount: detached, not unmounted
  auto unmounted = unmount_or_detach(kept);
  ASSERT_EQ(::chdir("/"), 0);
  ::close(busy);
  ASSERT_TRUE(unmounted);
  EXPECT_EQ(unmounted.value(), Unmounted::kDetached);
  EXPECT_EQ(unmount_or_detach(kept).value(), Unmounted::kNotMounted);
  EXPECT_EQ(testing::mounts_under(dir.path()), std::vector<std::string>{});
}

TEST(ExitStatus, PrintErrorWritesOneLineAndReturnsTheStatus) {
  int err = ::memfd_create("stderr", MFD_CLOEXEC);
  ASSERT_GE(err, 0);
  std::fflush(stderr);
  int saved = ::dup(STDERR_FILENO);
  ::dup2(err, STDERR_FILENO);
  int status = print_error("hostchanfs test", "what, why, what to do", kExitUsage);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  EXPECT_EQ(status, kExitUsage);
  char buf[128] = {};
  ssize_t n = ::pread(err, buf, sizeof buf - 1, 0);
  ::close(err);
  EXPECT_EQ(std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0),
            "hostchanfs test: what, why, what to do\n");
}

TEST(ErrnoText, NamesAndTexts) {
  EXPECT_EQ(errno_name(ENOENT), "ENOENT");
  EXPECT_EQ(errno_name(std::errc::no_space_on_device), "ENOSPC");
  EXPECT_EQ(errno_name(4242), "4242");
  EXPECT_EQ(errno_text(std::errc::no_such_file_or_directory), "No such file or directory");
}

TEST(ReadFile, WholeOrWhy) {
  TempDir dir;
  std::string path = dir.path() + "/f";
  EXPECT_EQ(read_whole_file(path).error(), std::errc::no_such_file_or_directory);
  EXPECT_EQ(read_small_file(path), "");
  std::string big(200000, 'x');
  {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    ASSERT_EQ(::write(fd.get(), big.data(), big.size()), static_cast<ssize_t>(big.size()));
  }
  EXPECT_EQ(read_whole_file(path).value(), big) << "more than one read's worth";
}

}  // namespace
}  // namespace hostchanfs
