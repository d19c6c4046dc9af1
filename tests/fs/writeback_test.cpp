// `serve --cache=writeback`, the opt-in trade-off: small writes succeed into the kernel's
// page cache and ENOSPC surfaces when the cache is written back (fsync, close), where the
// default (exact) mode refuses the very write that crosses the quota, as tmpfs does.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "tests/support/fuse_required.hpp"
#include "tests/support/fuse_test.hpp"
#include "tests/support/mount_namespace.hpp"
#include "tests/support/scoped_mounts.hpp"

namespace hostchanfs::testing {
namespace {

constexpr std::uint64_t kQuota = 1ull << 20;
constexpr std::size_t kRecord = 1024;

struct Filled {
  std::uint64_t written = 0;  // bytes accepted by write(2)
  int write_errno = 0;        // the first write that failed, 0 if none did
  int fsync_errno = 0;
  std::uint64_t blocks_free = 0;
};

// Write 2 x quota in 1 KiB records (stopping at the first failing write), then fsync.
Filled fill_twice_the_quota(const std::string& dir) {
  Filled f;
  std::string path = dir + "/file";
  int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  EXPECT_GE(fd, 0) << path;
  std::vector<char> record(kRecord, 'x');
  while (f.written < 2 * kQuota) {
    ssize_t n = ::write(fd, record.data(), record.size());
    if (n < 0) {
      f.write_errno = errno;
      break;
    }
    f.written += static_cast<std::uint64_t>(n);
  }
  if (::fsync(fd) < 0) f.fsync_errno = errno;
  ::close(fd);
  struct statvfs v {};
  ::statvfs(dir.c_str(), &v);
  f.blocks_free = v.f_bfree;
  return f;
}

class WritebackCache : public FuseTest {};

TEST_F(WritebackCache, EnospcSurfacesAtFsyncInsteadOfTheWrite) {
  ScopedHostchanfs::Options o;
  o.size_bytes = kQuota;
  o.extra_args = {"--cache", "writeback"};
  ScopedHostchanfs mnt(o);
  Filled f = fill_twice_the_quota(mnt.path());
  EXPECT_EQ(f.write_errno, 0) << "writes go to the page cache";
  EXPECT_EQ(f.written, 2 * kQuota);
  EXPECT_EQ(f.fsync_errno, ENOSPC) << "the write-back is what runs out of space";
  EXPECT_EQ(f.blocks_free, 0u) << "the store holds what fits";
}

TEST_F(WritebackCache, DefaultModeRefusesTheWriteThatCrossesTheQuota) {
  ScopedHostchanfs mnt(kQuota);
  ScopedTmpfs tmpfs(kQuota);
  for (const std::string& dir : {mnt.path(), tmpfs.path()}) {
    Filled f = fill_twice_the_quota(dir);
    EXPECT_EQ(f.write_errno, ENOSPC) << dir;
    EXPECT_EQ(f.written, kQuota) << dir;
    EXPECT_EQ(f.fsync_errno, 0) << dir;
    EXPECT_EQ(f.blocks_free, 0u) << dir;
  }
}

}  // namespace
}  // namespace hostchanfs::testing
