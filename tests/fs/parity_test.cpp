// hostchanfs against kernel tmpfs, the probes of issue 16 (the last differences): file
// sizes up to MAX_LFS_FILESIZE, atime under relatime, RENAME_WHITEOUT, O_TMPFILE, POSIX
// ACLs, and what another process reads after a shared mapping's write-back failed. The
// same steps on both, the same observations (tests/fs/tmpfs_pair.hpp).
#include <fcntl.h>
#include <linux/falloc.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <map>
#include <string>

#include "tests/fs/tmpfs_pair.hpp"

namespace hostchanfs::testing {
namespace {

using ParityWithTmpfs = TmpfsPair;

// MAX_LFS_FILESIZE: truncate and fallocate reach it; past it is EFBIG (the VFS's check);
// a fallocate that the quota cannot hold is ENOSPC wherever it lands.
TEST_F(ParityWithTmpfs, SizesUpToMaxLfsFilesize) {
  compare([](Trace& t) {
    int fd = ::open(t.p("f"), O_RDWR | O_CREAT, 0644);
    t.rc("ftruncate 1<<60", ::ftruncate(fd, off_t{1} << 60));
    t.stat("f");
    t.rc("posix_fallocate 1<<62 4096", -::posix_fallocate(fd, off_t{1} << 62, 4096));
    t.stat("f");
    t.statfs("after a page at 1<<62");
    t.rc("fallocate past the quota at 1<<61", ::fallocate(fd, 0, off_t{1} << 61, 16 << 20));
    t.rc("fallocate keep-size past the quota", ::fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 64 << 20));
    t.rc("fallocate across MAX_LFS_FILESIZE", ::fallocate(fd, 0, LLONG_MAX - 100, 4096));
    t.rc("fallocate ending at MAX_LFS_FILESIZE", ::fallocate(fd, 0, LLONG_MAX - 4096, 4096));
    t.stat("f");
    t.rc("ftruncate MAX_LFS_FILESIZE", ::ftruncate(fd, LLONG_MAX));
    t.stat("f");
    t.rc("pwrite 10 across the end", ::pwrite(fd, "0123456789", 10, LLONG_MAX - 5));
    t.rc("pwrite at MAX_LFS_FILESIZE", ::pwrite(fd, "x", 1, LLONG_MAX));
    char buf[16] = {};
    t.rc("pread the last bytes", ::pread(fd, buf, sizeof buf, LLONG_MAX - 5));
    t.add(std::string("last bytes ") + std::string(buf, 5));
    t.rc("SEEK_DATA 0", ::lseek(fd, 0, SEEK_DATA));
    t.rc("SEEK_HOLE 1<<62", ::lseek(fd, off_t{1} << 62, SEEK_HOLE));
    t.rc("SEEK_DATA past 1<<62", ::lseek(fd, (off_t{1} << 62) + 4096, SEEK_DATA));
    t.stat("f");
    t.statfs("before shrinking");
    t.rc("ftruncate 1<<62 + 1", ::ftruncate(fd, (off_t{1} << 62) + 1));
    t.stat("f");
    t.statfs("after shrinking");
    ::close(fd);
    t.rc("unlink", ::unlink(t.p("f")));
    t.statfs("after unlink");
  });
}

}  // namespace
}  // namespace hostchanfs::testing
