// hostchanfs against kernel tmpfs, the probes of issue 16 (the last differences): file
// sizes up to MAX_LFS_FILESIZE, atime under relatime, RENAME_WHITEOUT, O_TMPFILE, and what
// another process reads after a shared mapping's write-back failed (POSIX ACLs:
// tests/fs/acl_test.cpp, which also runs writer-charged). The same steps on both, the
// same observations (tests/fs/tmpfs_pair.hpp).
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

// A file's atime as a program can tell it apart on two filesystems whose clocks are not
// compared: the value a test set, or "fresh" (not before mtime and ctime, within a minute
// of now), and whether it moved since the last look.
class AtimeProbe {
 public:
  static constexpr time_t kOld = 978307200;     // 2001-01-01, as `touch -a -d 2001-01-01`
  static constexpr time_t kFuture = 4102444800; // 2100-01-01

  explicit AtimeProbe(Trace& t) : t_(t) {}
  void set(const std::string& rel, time_t when) {
    const timespec times[2] = {{when, 0}, {0, UTIME_OMIT}};
    t_.rc("touch -a " + rel + " " + std::to_string(when), ::utimensat(AT_FDCWD, t_.p(rel), times, 0));
    look(rel, "after touch -a");
  }
  // Read all of `rel` (opened with `flags`), then look.
  void read(const std::string& rel, const std::string& label, int flags = O_RDONLY) {
    int fd = ::open(t_.p(rel), flags);
    if (fd < 0) return t_.add("open " + rel + ": " + errno_name(errno));
    char buf[4096];
    long total = 0;
    for (long n; (n = ::read(fd, buf, sizeof buf)) > 0;) total += n;
    ::close(fd);
    t_.add("read " + rel + ": " + std::to_string(total) + " bytes");
    look(rel, label);
  }
  void look(const std::string& rel, const std::string& label) {
    struct stat st {};
    if (::stat(t_.p(rel), &st) < 0) return t_.add("stat " + rel + ": " + errno_name(errno));
    const timespec a = st.st_atim;
    std::string kind = "other";
    if (a.tv_sec == kOld && a.tv_nsec == 0) kind = "old";
    if (a.tv_sec == kFuture && a.tv_nsec == 0) kind = "future";
    if (!before(a, st.st_mtim) && !before(a, st.st_ctim) && std::labs(::time(nullptr) - a.tv_sec) < 60) kind = "fresh";
    auto& last = last_[rel];
    t_.add("atime " + rel + " " + label + ": " + kind + (same(last, a) ? " unchanged" : " changed"));
    last = a;
    // Two updates in one tick of tmpfs's coarse clock could not be told apart.
    ::usleep(20000);
  }

 private:
  static bool before(const timespec& x, const timespec& y) {
    return x.tv_sec < y.tv_sec || (x.tv_sec == y.tv_sec && x.tv_nsec < y.tv_nsec);
  }
  static bool same(const timespec& x, const timespec& y) { return x.tv_sec == y.tv_sec && x.tv_nsec == y.tv_nsec; }
  Trace& t_;
  std::map<std::string, timespec> last_;
};

// tmpfs mounted relatime (its default): a read updates atime when it is not after mtime
// or ctime, or is a day old; not otherwise, not when opened O_NOATIME, not for a write.
TEST_F(ParityWithTmpfs, AtimeFollowsRelatime) {
  compare([](Trace& t) {
    AtimeProbe atime(t);
    write_file(t, "f", "some data");  // (no look: tmpfs's coarse clock may give mtime == atime)
    atime.read("f", "first read of a new file");
    atime.set("f", AtimeProbe::kOld);
    atime.read("f", "read of a file with an old atime");
    atime.read("f", "read again at once");
    write_file(t, "f", "newer data");
    atime.look("f", "after a write");
    atime.read("f", "read after a write");
    atime.set("f", AtimeProbe::kFuture);
    atime.read("f", "read of an atime in the future");
    atime.set("f", AtimeProbe::kOld);
    atime.read("f", "read with O_NOATIME", O_RDONLY | O_NOATIME);
    int fd = ::open(t.p("f"), O_WRONLY);
    t.rc("write through O_WRONLY", ::write(fd, "w", 1));
    ::close(fd);
    atime.set("f", AtimeProbe::kOld);
    fd = ::open(t.p("f"), O_WRONLY | O_APPEND);
    ::close(fd);
    atime.look("f", "open for writing only");
    write_file(t, "empty", "");
    atime.set("empty", AtimeProbe::kOld);
    atime.read("empty", "read of an empty file");
    t.rc("mkdir d", ::mkdir(t.p("d"), 0755));
    atime.set("d", AtimeProbe::kOld);
    t.list("d");
    atime.look("d", "listing");
    t.list("d");
    atime.look("d", "listing again");
  });
}

// RENAME_WHITEOUT (root: CAP_MKNOD) leaves a 0:0 character device with no permission
// bits under the old name, which costs an inode; the flags it may not join are EINVAL.
TEST_F(ParityWithTmpfs, RenameWhiteout) {
  compare([](Trace& t) {
    auto device = [&](const std::string& rel) {
      struct stat st {};
      if (::lstat(t.p(rel), &st) == 0)
        t.add("rdev " + rel + ": " + std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev)));
    };
    write_file(t, "a", "A");
    t.rc("mkdir d", ::mkdir(t.p("d"), 0755));
    write_file(t, "d/inside", "I");
    t.statfs("before");
    t.stat("");
    t.rc("whiteout a -> b", ::renameat2(AT_FDCWD, t.p("a"), AT_FDCWD, t.p("b"), RENAME_WHITEOUT));
    t.stat("a");
    device("a");
    t.stat("b");
    t.add("b holds " + read_file(t.path("b")));
    t.stat("");
    t.statfs("after a whiteout");
    t.rc("whiteout of a directory", ::renameat2(AT_FDCWD, t.p("d"), AT_FDCWD, t.p("d2"), RENAME_WHITEOUT));
    t.stat("d");
    device("d");
    t.stat("d2");
    t.list("");
    t.rc("whiteout|noreplace onto a name", ::renameat2(AT_FDCWD, t.p("b"), AT_FDCWD, t.p("d2"), RENAME_WHITEOUT | RENAME_NOREPLACE));
    t.rc("whiteout|noreplace", ::renameat2(AT_FDCWD, t.p("b"), AT_FDCWD, t.p("c"), RENAME_WHITEOUT | RENAME_NOREPLACE));
    t.rc("whiteout|exchange", ::renameat2(AT_FDCWD, t.p("c"), AT_FDCWD, t.p("d2"), RENAME_WHITEOUT | RENAME_EXCHANGE));
    t.rc("whiteout over an existing file", ::renameat2(AT_FDCWD, t.p("c"), AT_FDCWD, t.p("a"), RENAME_WHITEOUT));
    t.stat("a");
    t.stat("c");
    t.rc("open a whiteout", ::open(t.p("b"), O_RDONLY));
    t.rc("unlink a whiteout", ::unlink(t.p("b")));
    write_file(t, "mine", "m", 0666);
    t.as_user(65534, 65534, [](Trace& u) {
      u.rc("whiteout without CAP_MKNOD", ::renameat2(AT_FDCWD, u.p("mine"), AT_FDCWD, u.p("theirs"), RENAME_WHITEOUT));
    });
    t.list("");
    t.statfs("at the end");
  });
}

// The inode limit reached: the whiteout has no inode, and nothing moves.
TEST_F(ParityWithTmpfs, RenameWhiteoutAtTheInodeLimit) {
  mount(1 << 20, 8);
  compare([](Trace& t) {
    for (int i = 0;; ++i) {
      int fd = ::open(t.p("f" + std::to_string(i)), O_WRONLY | O_CREAT, 0644);
      if (fd < 0) {
        t.add("inodes ran out after " + std::to_string(i) + " files: " + errno_name(errno));
        break;
      }
      ::close(fd);
    }
    t.rc("whiteout with no inode left", ::renameat2(AT_FDCWD, t.p("f0"), AT_FDCWD, t.p("g"), RENAME_WHITEOUT));
    t.list("");
    t.statfs();
  });
}

// O_TMPFILE: an unnamed file charged to the quota, linkable by AT_EMPTY_PATH or through
// /proc/self/fd (not when opened O_EXCL), freed at its last close when never linked.
TEST_F(ParityWithTmpfs, Tmpfile) {
  compare([](Trace& t) {
    auto fstat_line = [&](const std::string& label, int fd) {
      struct stat st {};
      if (::fstat(fd, &st) < 0) return t.add(label + ": fstat " + errno_name(errno));
      t.add(label + ": mode=" + std::to_string(st.st_mode) + " nlink=" + std::to_string(st.st_nlink) +
            " uid=" + std::to_string(st.st_uid) + " size=" + std::to_string(st.st_size) +
            " blocks=" + std::to_string(st.st_blocks));
    };
    t.rc("mkdir d", ::mkdir(t.p("d"), 0755));
    t.stat("d");
    t.statfs("fresh");
    int fd = static_cast<int>(t.ok("open O_TMPFILE|O_RDWR", ::open(t.p("d"), O_TMPFILE | O_RDWR, 0640)));
    std::string data(10000, 't');
    t.rc("write 10000", ::write(fd, data.data(), data.size()));
    fstat_line("unnamed", fd);
    t.statfs("with an unnamed file");
    t.list("d");
    t.stat("d");
    t.rc("linkat AT_EMPTY_PATH", ::linkat(fd, "", AT_FDCWD, t.p("d/named"), AT_EMPTY_PATH));
    fstat_line("linked", fd);
    t.rc("link it again", ::linkat(fd, "", AT_FDCWD, t.p("d/again"), AT_EMPTY_PATH));
    t.stat("d/named");
    t.add("named holds " + std::to_string(read_file(t.path("d/named")).size()) + " bytes");
    ::close(fd);
    t.statfs("after close of a linked one");

    fd = static_cast<int>(t.ok("open O_TMPFILE|O_WRONLY", ::open(t.p(""), O_TMPFILE | O_WRONLY, 0600)));
    t.rc("write 5", ::write(fd, "proc!", 5));
    const std::string proc = "/proc/self/fd/" + std::to_string(fd);
    t.rc("linkat /proc/self/fd", ::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, t.p("via-proc"), AT_SYMLINK_FOLLOW));
    ::close(fd);
    t.add("via-proc holds " + read_file(t.path("via-proc")));

    fd = static_cast<int>(t.ok("open O_TMPFILE|O_EXCL", ::open(t.p(""), O_TMPFILE | O_RDWR | O_EXCL, 0600)));
    t.rc("linkat of an O_EXCL one", ::linkat(fd, "", AT_FDCWD, t.p("never"), AT_EMPTY_PATH));
    ::close(fd);

    t.statfs("before an unlinked one");
    fd = static_cast<int>(t.ok("open O_TMPFILE", ::open(t.p("d"), O_TMPFILE | O_RDWR, 0600)));
    std::string big(64 << 10, 'b');
    t.rc("write 64K", ::write(fd, big.data(), big.size()));
    t.statfs("while open");
    ::close(fd);
    t.statfs("after its last close");

    t.rc("O_TMPFILE on a file", ::open(t.p("via-proc"), O_TMPFILE | O_RDWR, 0600));
    t.rc("O_TMPFILE read-only", ::open(t.p("d"), O_TMPFILE | O_RDONLY, 0600));
    t.rc("O_TMPFILE in a missing directory", ::open(t.p("missing"), O_TMPFILE | O_RDWR, 0600));
    t.as_user(65534, 65534, [](Trace& u) {
      u.rc("O_TMPFILE in a directory not writable", ::open(u.p("d"), O_TMPFILE | O_RDWR, 0600));
      int ufd = static_cast<int>(u.ok("O_TMPFILE in the root", ::open(u.p(""), O_TMPFILE | O_RDWR, 0644)));
      struct stat st {};
      ::fstat(ufd, &st);
      u.add("owner " + std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid));
      ::close(ufd);
    });
    t.list("");
    t.list("d");
    t.statfs("at the end");
  });
}

// A store through a shared mapping into a hole of a full channel: tmpfs kills the writer
// (SIGBUS); here the store lands in the page cache and its write-back fails. Either way,
// another process then reads what the filesystem holds: zeros, no blocks.
TEST_F(ParityWithTmpfs, NoPhantomDataAfterAFailedWriteBack) {
  constexpr std::size_t kChannel = 1 << 20;
  mount(kChannel, 1024);
  compare([](Trace& t) {
    int full = ::open(t.p("full"), O_WRONLY | O_CREAT, 0644);
    std::string page(4096, 'x');
    std::size_t pages = 0;
    while (::write(full, page.data(), page.size()) == static_cast<ssize_t>(page.size())) ++pages;
    t.add("filled " + std::to_string(pages) + " pages: " + errno_name(errno));
    ::close(full);
    int fd = ::open(t.p("sparse"), O_RDWR | O_CREAT, 0644);
    t.rc("ftruncate 4 pages", ::ftruncate(fd, 4 * 4096));
    ::close(fd);
    const std::string path = t.path("sparse");
    auto writer = ChildProcess::fork([path] {
      struct sigaction plain {};  // see tests/fs/ipc_test.cpp: a plain death, no core
      plain.sa_handler = SIG_DFL;
      ::sigaction(SIGBUS, &plain, nullptr);
      rlimit no_core{0, 0};
      ::setrlimit(RLIMIT_CORE, &no_core);
      int wfd = ::open(path.c_str(), O_RDWR);
      auto* m = static_cast<volatile char*>(::mmap(nullptr, 4 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, wfd, 0));
      if (m == MAP_FAILED) return 3;
      for (std::size_t i = 0; i < 8; ++i) m[4096 + i] = 'P';
      ::msync(const_cast<char*>(m), 4 * 4096, MS_SYNC);  // fails with ENOSPC here
      ::munmap(const_cast<char*>(m), 4 * 4096);
      ::close(wfd);
      return 0;
    });
    const int status = writer.wait();
    t.add(std::string("writer ended ") + (status == 0 || status == 128 + SIGBUS ? "as expected" : "oddly"));
    std::string seen = read_file(path);
    t.add("reader sees " + std::to_string(seen.size()) + " bytes, " +
          (seen.find('P') == std::string::npos ? "all zeros" : "the unstored bytes"));
    t.stat("sparse");
    fd = ::open(t.p("sparse"), O_RDONLY);
    char b[8] = {};
    t.rc("pread the stored-into page", ::pread(fd, b, sizeof b, 4096));
    t.add(std::string("first byte ") + std::to_string(b[0]));
    ::close(fd);
    t.statfs();
  });
}

}  // namespace
}  // namespace hostchanfs::testing
