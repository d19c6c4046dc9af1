// `hostchanfs serve`: what it refuses, how it mounts, how it stops, and the controller's
// hand-over mode (an already-mounted /dev/fuse and the store's memfds, re-attachable).
#include <fcntl.h>
#include <gmock/gmock.h>
#include <poll.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "fs/kernel_mount.hpp"
#include "sys/errno_text.hpp"
#include "sys/memfd.hpp"
#include "sys/unique_fd.hpp"
#include "tests/fs/trace.hpp"
#include "tests/support/fuse_required.hpp"
#include "tests/support/fuse_test.hpp"
#include "tests/support/mount_namespace.hpp"
#include "tests/support/scoped_mounts.hpp"

namespace hostchanfs::testing {
namespace {

// The /proc/self/mounts line for `path`, or "" when nothing is mounted there.
std::string mount_line(const std::string& path) {
  std::ifstream in("/proc/self/mounts");
  for (std::string line; std::getline(in, line);)
    if (line.find(" " + path + " ") != std::string::npos) return line;
  return "";
}

struct Outcome {
  int status;
  std::string stderr_text;
};

// Run `hostchanfs serve ARGS...` to completion (for refusals), capturing stderr.
Outcome run_serve(const std::vector<std::string>& args) {
  TempDir out("serve-stderr");
  std::string err_path = out.path() + "/stderr";
  int err_fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  std::vector<std::string> argv = {HOSTCHANFS_BIN, "serve"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto child = ChildProcess::spawn(argv, {{err_fd, 2}});
  ::close(err_fd);
  Outcome o{child.wait(), read_file(err_path)};
  ::unlink(err_path.c_str());
  return o;
}

class Serve : public FuseTest {};

void expect_refused(const Outcome& o, const std::string& what) {
  EXPECT_EQ(o.status, 2) << o.stderr_text;
  EXPECT_THAT(o.stderr_text, ::testing::StartsWith("hostchanfs serve: "));
  EXPECT_THAT(o.stderr_text, ::testing::HasSubstr(what));
  EXPECT_EQ(std::count(o.stderr_text.begin(), o.stderr_text.end(), '\n'), 1) << o.stderr_text;
}

TEST_F(Serve, RefusesMissingFileOrMountedMountPoints) {
  TempDir dir;
  expect_refused(run_serve({"--size", "1M", dir.path() + "/missing"}), "does not exist");
  std::string file = dir.path() + "/file";
  ::close(::open(file.c_str(), O_CREAT | O_WRONLY, 0644));
  expect_refused(run_serve({"--size", "1M", file}), "is not a directory");
  ::unlink(file.c_str());
  ScopedTmpfs busy(1 << 20);
  expect_refused(run_serve({"--size", "1M", busy.path()}), "already a mount point");
  EXPECT_THAT(mount_line(busy.path()), ::testing::HasSubstr(" tmpfs "));  // untouched
  EXPECT_EQ(mount_line(dir.path()), "");
}

TEST_F(Serve, RefusesBadArguments) {
  TempDir dir;
  expect_refused(run_serve({"--size", "12x", dir.path()}), "is not a size");
  expect_refused(run_serve({"--size", "100", dir.path()}), "below one 4 KiB page");
  expect_refused(run_serve({"--size", "1M", "--meta-fd", "0", dir.path()}), "go together");
  expect_refused(run_serve({"--size", "1M", "--ready-fd", "77", dir.path()}), "not an open descriptor");
  expect_refused(run_serve({"--size", "1M", "--charge", "writer", "--cache", "writeback", dir.path()}),
                 "--charge writer and --cache writeback exclude each other");
  expect_refused(run_serve({"--size", "1M", "--backing-fd", "0", dir.path()}),
                 "--backing-fd goes with --charge writer only");
  EXPECT_EQ(run_serve({"--size", "1M", "--charge", "payer", dir.path()}).status, 2);  // CLI usage error
  EXPECT_EQ(run_serve({"--size", "1M"}).status, 2);  // no mount point: CLI usage error
  EXPECT_EQ(mount_line(dir.path()), "");
}

TEST_F(Serve, MountsLikeTheSeedAndStopsCleanlyOnSigterm) {
  ScopedHostchanfs::Options o;
  o.size_bytes = 4 << 20;
  o.extra_args = {"--uid", "1000", "--gid", "1001"};
  ScopedHostchanfs fs(o);
  std::string line = mount_line(fs.path());
  EXPECT_THAT(line, ::testing::StartsWith("hostchanfs " + fs.path() + " fuse.hostchanfs "));
  for (const char* opt : {"nosuid", "nodev", "noexec", "default_permissions", "allow_other"})
    EXPECT_THAT(line, ::testing::HasSubstr(opt));
  struct stat st {};
  ASSERT_EQ(::stat(fs.path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, S_IFDIR | 01777u);
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_gid, 1001u);
  std::string file = fs.path() + "/f";
  ::close(::open(file.c_str(), O_CREAT | O_WRONLY, 0644));
  EXPECT_EQ(fs.stop(), 0);
  EXPECT_EQ(mount_line(fs.path()), "");
}

// A cold sequential read asks for as much as one READ carries (1 MiB), not the kernel's
// 128 KiB: the mount raised read_ahead_kb and INIT did not lower it again.
TEST_F(Serve, ReadsAheadAsMuchAsOneRequestCarries) {
  ScopedHostchanfs fs(4 << 20);
  EXPECT_EQ(read_ahead_kb(fs.path()), "1024");
}

TEST_F(Serve, StopsOnSigintAndOnUnmountFromOutside) {
  {
    ScopedHostchanfs fs(1 << 20);
    ::kill(fs.pid(), SIGINT);
    EXPECT_EQ(fs.stop(), 0);  // stop() sends SIGTERM to an already-exiting daemon: harmless
    EXPECT_EQ(mount_line(fs.path()), "");
  }
  ScopedHostchanfs fs(1 << 20);
  ASSERT_EQ(::umount2(fs.path().c_str(), 0), 0);
  EXPECT_EQ(fs.stop(), 0);
}

// The controller's way: it opens /dev/fuse, mounts, makes the memfds, and hands them
// over. A second daemon given the same memfds finds the files the first one wrote.
class HandedOverMount {
 public:
  HandedOverMount(const std::string& dir, int meta, int data) : dir_(dir) {
    auto mounted = fs::mount_fuse(dir, 0, 0);  // what the controller calls
    if (!mounted) throw std::runtime_error("mount_fuse: " + errno_text(mounted.error()));
    fuse_ = std::move(mounted).value();
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) < 0) throw std::runtime_error("pipe2");
    daemon_ = ChildProcess::spawn({HOSTCHANFS_BIN, "serve", "--size", "4M", "--fuse-fd", "3", "--meta-fd", "4",
                                   "--data-fd", "5", "--ready-fd", "6", dir},
                                  {{fuse_.get(), 3}, {meta, 4}, {data, 5}, {ready[1], 6}});
    ::close(ready[1]);
    char buf[8] = {};
    // The 30 s bound only turns a daemon that never answers into a failure (instead of a
    // test that blocks); it is not a timing assertion.
    pollfd p{ready[0], POLLIN, 0};
    ssize_t n = ::poll(&p, 1, 30000) > 0 ? ::read(ready[0], buf, sizeof buf) : -1;
    ::close(ready[0]);
    if (n != 6) throw std::runtime_error("daemon not ready");
  }
  ~HandedOverMount() { stop(); }
  int stop() {
    if (!daemon_.running()) return daemon_.wait();
    daemon_.signal(SIGTERM);
    int st = daemon_.wait();
    ::umount2(dir_.c_str(), MNT_DETACH);  // the controller's mount: the controller removes it
    fuse_.reset();
    return st;
  }

 private:
  std::string dir_;
  UniqueFd fuse_;
  ChildProcess daemon_;
};

TEST_F(Serve, TakesOverAControllerMountAndReattachesToItsMemory) {
  TempDir dir;
  auto meta = make_memfd("meta", 0);
  auto data = make_memfd("data", 0);
  ASSERT_TRUE(meta && data);
  {
    HandedOverMount m(dir.path(), meta.value().get(), data.value().get());
    EXPECT_THAT(mount_line(dir.path()), ::testing::HasSubstr("fuse.hostchanfs"));
    int fd = ::open((dir.path() + "/kept").c_str(), O_CREAT | O_WRONLY, 0640);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "still here", 10), 10);
    ::close(fd);
    ASSERT_EQ(::mkdir((dir.path() + "/sub").c_str(), 0700), 0);
    EXPECT_EQ(m.stop(), 0);
  }
  EXPECT_EQ(mount_line(dir.path()), "");
  HandedOverMount again(dir.path(), meta.value().get(), data.value().get());
  EXPECT_EQ(read_file(dir.path() + "/kept"), "still here");
  struct stat st {};
  ASSERT_EQ(::stat((dir.path() + "/sub").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, S_IFDIR | 0700u);
  struct statvfs v {};
  ASSERT_EQ(::statvfs(dir.path().c_str(), &v), 0);
  EXPECT_EQ(v.f_blocks - v.f_bfree, 1u);  // the one page of "kept"
  EXPECT_EQ(again.stop(), 0);
}

}  // namespace
}  // namespace hostchanfs::testing
