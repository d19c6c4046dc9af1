// hostchanfs against kernel tmpfs: the same steps on both, the same observations.
#include <linux/falloc.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <string>

#include "tests/fs/tmpfs_pair.hpp"

namespace hostchanfs::testing {
namespace {

using CompareWithTmpfs = TmpfsPair;

TEST_F(CompareWithTmpfs, FilesDirectoriesAndErrors) {
  compare([](Trace& t) {
    t.rc("mkdir d", ::mkdir(t.p("d"), 0755));
    t.rc("mkdir d again", ::mkdir(t.p("d"), 0755));
    write_file(t, "d/f", "hello");
    t.stat("d/f");
    t.stat("d");
    t.stat("");
    t.rc("link d/f d/g", ::link(t.p("d/f"), t.p("d/g")));
    t.stat("d/f");
    t.rc("link d/f d/g again", ::link(t.p("d/f"), t.p("d/g")));
    t.rc("link d d2", ::link(t.p("d"), t.p("d2")));
    t.rc("unlink d/g", ::unlink(t.p("d/g")));
    t.stat("d/f");
    t.rc("rmdir d", ::rmdir(t.p("d")));
    t.rc("unlink d", ::unlink(t.p("d")));
    t.rc("rmdir d/f", ::rmdir(t.p("d/f")));
    t.rc("open missing", ::open(t.p("d/missing"), O_RDONLY));
    t.rc("open through a file", ::open(t.p("d/f/x"), O_RDONLY));
    t.rc("open dir for writing", ::open(t.p("d"), O_WRONLY));
    t.rc("open O_EXCL existing", ::open(t.p("d/f"), O_CREAT | O_EXCL | O_WRONLY, 0644));
    t.rc("mkdir 256-byte name", ::mkdir(t.p(std::string(256, 'n')), 0755));
    t.rc("mkdir 255-byte name", ::mkdir(t.p(std::string(255, 'n')), 0755));
    t.rc("truncate d/f 10000", ::truncate(t.p("d/f"), 10000));
    t.stat("d/f");
    t.rc("truncate d/f 3", ::truncate(t.p("d/f"), 3));
    t.add("content " + read_file(t.path("d/f")));
    t.rc("truncate d/f 0", ::truncate(t.p("d/f"), 0));
    t.stat("d/f");
    t.rc("truncate dir", ::truncate(t.p("d"), 0));
    write_file(t, "d/trunc", std::string(9000, 'x'));
    int fd = ::open(t.p("d/trunc"), O_WRONLY | O_TRUNC);
    t.ok("open O_TRUNC", fd);
    ::close(fd);
    t.stat("d/trunc");
    t.rc("symlink short", ::symlink("d/f", t.p("short")));
    t.rc("symlink long", ::symlink(std::string(200, 'L').c_str(), t.p("long")));
    t.rc("symlink existing", ::symlink("x", t.p("short")));
    t.stat("short");
    t.stat("long");
    char buf[300] = {};
    t.rc("readlink short", ::readlink(t.p("short"), buf, sizeof buf));
    t.add(std::string("target ") + buf);
    t.rc("readlink file", ::readlink(t.p("d/f"), buf, sizeof buf));
    t.rc("mkfifo", ::mkfifo(t.p("fifo"), 0640));
    t.rc("mknod socket", ::mknod(t.p("sock"), S_IFSOCK | 0600, 0));
    t.rc("mknod chr (nodev mount)", ::mknod(t.p("chr"), S_IFCHR | 0600, makedev(1, 3)));
    t.stat("fifo");
    t.stat("sock");
    t.stat("chr");
    t.rc("chmod d/f 4711", ::chmod(t.p("d/f"), 04711));
    t.rc("chown d/f", ::chown(t.p("d/f"), 1000, 1000));
    t.stat("d/f");
    t.list("");
    t.list("d");
    t.list("missing");
  });
}

TEST_F(CompareWithTmpfs, DirectoryLinkCountsAndListings) {
  compare([](Trace& t) {
    t.rc("mkdir a", ::mkdir(t.p("a"), 0755));
    t.rc("mkdir a/b", ::mkdir(t.p("a/b"), 0755));
    t.rc("mkdir a/c", ::mkdir(t.p("a/c"), 0700));
    t.stat("a");
    t.stat("");
    for (int i = 0; i < 300; ++i) write_file(t, "a/file" + std::to_string(i), std::string(i, 'z'));
    t.stat("a");
    t.list("a");
    for (int i = 0; i < 300; i += 2) t.rc("unlink", ::unlink(t.p("a/file" + std::to_string(i))));
    t.list("a");
    t.rc("rmdir a/b", ::rmdir(t.p("a/b")));
    t.stat("a");
    t.rc("rename a/c top", ::rename(t.p("a/c"), t.p("c")));
    t.stat("a");
    t.stat("");
    t.statfs();
  });
}

TEST_F(CompareWithTmpfs, StatfsFollowsUsage) {
  compare([](Trace& t) {
    t.statfs("fresh");
    write_file(t, "one-byte", "x");
    t.statfs("after 1 byte");
    write_file(t, "five-k", std::string(5000, 'y'));
    t.statfs("after 5000 bytes");
    int fd = ::open(t.p("sparse"), O_WRONLY | O_CREAT, 0644);
    t.rc("pwrite at 1 MiB", ::pwrite(fd, "z", 1, 1 << 20));
    ::close(fd);
    t.stat("sparse");
    t.statfs("after sparse");
    t.rc("mkdir", ::mkdir(t.p("dir"), 0755));
    t.rc("symlink long", ::symlink(std::string(300, 's').c_str(), t.p("dir/long")));
    t.statfs("after dir and long symlink");
    t.rc("truncate five-k 4096", ::truncate(t.p("five-k"), 4096));
    t.statfs("after truncate");
    // A rename over a file takes its last link: its pages go with it, at once or, while
    // it is still open, at its last close (with --charge writer, its backing file's).
    write_file(t, "replaced", std::string(9000, 'r'));
    write_file(t, "newcomer", "n");
    t.rc("rename over a file", ::rename(t.p("newcomer"), t.p("replaced")));
    t.statfs("after a rename over a file");
    write_file(t, "open-replaced", std::string(9000, 'o'));
    write_file(t, "newcomer", "n");
    int held = ::open(t.p("open-replaced"), O_RDONLY);
    t.rc("rename over an open file", ::rename(t.p("newcomer"), t.p("open-replaced")));
    t.statfs("after a rename over an open file");
    ::close(held);
    t.statfs("after its last close");
    for (const char* name : {"replaced", "open-replaced"}) t.rc("unlink", ::unlink(t.p(name)));
    for (const char* name : {"one-byte", "five-k", "sparse", "dir/long"}) t.rc("unlink", ::unlink(t.p(name)));
    t.rc("rmdir", ::rmdir(t.p("dir")));
    t.statfs("after removing everything");
  });
}

// The RELEASE of a file closed just before may sit with a worker that the kernel preempted
// on its way back from read(2), before it ran any code of ours; a statfs that another
// worker reads meanwhile must still see the file's space free, as tmpfs does at once.
// HOSTCHANFS_TEST_STALL_AFTER_RELEASE_READ stalls the worker there (300 ms).
TEST_F(CompareWithTmpfs, StatfsRightAfterALastCloseWhoseReleaseIsStillBeingRead) {
  {
    struct Stall {
      Stall() { ::setenv("HOSTCHANFS_TEST_STALL_AFTER_RELEASE_READ", "300", 1); }
      ~Stall() { ::unsetenv("HOSTCHANFS_TEST_STALL_AFTER_RELEASE_READ"); }
    } stall;
    mount();
  }
  compare([](Trace& t) {
    t.statfs("fresh");
    int fd = ::open(t.p("f"), O_RDWR | O_CREAT, 0644);
    std::string data(64 << 10, 'r');
    t.rc("write 64K", ::write(fd, data.data(), data.size()));
    t.rc("unlink while open", ::unlink(t.p("f")));
    t.statfs("while open");
    ::close(fd);
    t.statfs("right after its last close");
  });
}

TEST_F(CompareWithTmpfs, InodeLimit) {
  mount(1 << 20, 64);
  compare([](Trace& t) {
    int made = 0;
    for (int i = 0; i < 100; ++i) {
      int fd = ::open(t.p("f" + std::to_string(i)), O_CREAT | O_WRONLY, 0644);
      if (fd < 0) {
        t.add("create " + std::to_string(i) + ": " + errno_name(errno));
        break;
      }
      ::close(fd);
      ++made;
    }
    t.add("created " + std::to_string(made));
    t.rc("mkdir when full", ::mkdir(t.p("d"), 0755));
    t.rc("link when full", ::link(t.p("f0"), t.p("f0-link")));
    t.statfs();
    t.rc("unlink f1", ::unlink(t.p("f1")));
    t.rc("mkdir after unlink", ::mkdir(t.p("d"), 0755));
  });
}

// Write `chunk`-byte pieces until the quota stops it: where the first error starts, what
// the last successful write returned, what errno is, what statfs says.
void fill(Trace& t, const std::string& name, std::size_t chunk, off_t start) {
  int fd = ::open(t.p(name), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::string data(chunk, 'q');
  std::uint64_t total = 0;
  long last = 0;
  ssize_t n = 0;
  if (start) ::lseek(fd, start, SEEK_SET);
  while ((n = ::write(fd, data.data(), data.size())) > 0) {
    total += static_cast<std::uint64_t>(n);
    last = n;
  }
  int err = errno;
  t.add("fill " + name + " by " + std::to_string(chunk) + " from " + std::to_string(start) + ": " +
        std::to_string(total) + " bytes, last write " + std::to_string(last) + ", then " +
        std::to_string(n) + " " + (n < 0 ? errno_name(err) : ""));
  t.rc("write once more", ::write(fd, data.data(), data.size()));
  ::close(fd);
  t.stat(name);
  t.statfs();
}

TEST_F(CompareWithTmpfs, EnospcPointForEveryWriteSize) {
  mount(1 << 20, 1024);
  compare([](Trace& t) {
    // A filler leaves 3 pages, so that even 1-byte writes reach the end quickly.
    int fd = ::open(t.p("filler"), O_WRONLY | O_CREAT, 0644);
    std::string big((1 << 20) - 3 * 4096, 'f');
    t.rc("filler", ::write(fd, big.data(), big.size()));
    ::close(fd);
    t.statfs();
    for (std::size_t chunk : {std::size_t{1}, std::size_t{1024}, std::size_t{4096}, std::size_t{1} << 20}) {
      for (off_t start : {off_t{0}, off_t{1000}}) {
        fill(t, "fill", chunk, start);
        t.rc("unlink fill", ::unlink(t.p("fill")));
      }
    }
    t.rc("unlink filler", ::unlink(t.p("filler")));
    fill(t, "whole", 1 << 20, 0);  // a 1 MiB write into an empty 1 MiB mount
    fill(t, "after-full", 1, 0);
    t.statfs();
  });
}

TEST_F(CompareWithTmpfs, FallocatePunchAndSeek) {
  mount(1 << 20, 1024);
  compare([](Trace& t) {
    int fd = ::open(t.p("f"), O_RDWR | O_CREAT, 0644);
    t.rc("fallocate 256K", ::fallocate(fd, 0, 0, 256 << 10));
    t.stat("f");
    t.statfs();
    t.rc("fallocate keep-size 256K..512K", ::fallocate(fd, FALLOC_FL_KEEP_SIZE, 256 << 10, 256 << 10));
    t.stat("f");
    t.rc("fallocate 2 MiB (too big)", ::fallocate(fd, 0, 0, 2 << 20));
    t.stat("f");
    t.statfs("unchanged after a failed fallocate");
    t.rc("fallocate zero-range", ::fallocate(fd, FALLOC_FL_ZERO_RANGE, 0, 4096));
    t.rc("fallocate len 0", ::fallocate(fd, 0, 0, 0));
    t.rc("fallocate punch without keep-size", ::fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 4096));
    std::string data(8192, 'd');
    t.rc("pwrite 8K at 64K", ::pwrite(fd, data.data(), data.size(), 64 << 10));
    t.rc("pwrite 1 at 200K", ::pwrite(fd, "x", 1, 200 << 10));
    for (off_t at : {off_t{0}, off_t{64 << 10}, off_t{70 << 10}, off_t{100 << 10}, off_t{300 << 10}}) {
      t.rc("SEEK_DATA " + std::to_string(at), ::lseek(fd, at, SEEK_DATA));
      t.rc("SEEK_HOLE " + std::to_string(at), ::lseek(fd, at, SEEK_HOLE));
    }
    t.rc("punch 64K..68K", ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 64 << 10, 4096));
    t.rc("punch 100 bytes inside a page", ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (68 << 10) + 10, 100));
    t.stat("f");
    t.statfs("after punch");
    char buf[16] = {};
    t.rc("pread punched", ::pread(fd, buf, 4, 64 << 10));
    t.add(std::string("punched bytes zero: ") + (buf[0] == 0 && buf[3] == 0 ? "yes" : "no"));
    t.rc("pread partly punched", ::pread(fd, buf, 12, (68 << 10) + 6));
    t.add("partly: " + std::string(buf, buf + 4) + "|" + std::to_string(buf[4]) + std::to_string(buf[11]));
    t.rc("ftruncate 100K", ::ftruncate(fd, 100 << 10));
    t.stat("f");
    t.statfs("after shrinking");
    t.rc("SEEK_DATA beyond end", ::lseek(fd, 200 << 10, SEEK_DATA));
    ::close(fd);
    int dfd = ::open(t.p(""), O_RDONLY | O_DIRECTORY);
    t.rc("fallocate on a directory", ::fallocate(dfd, 0, 0, 4096));
    ::close(dfd);
    t.rc("unlink", ::unlink(t.p("f")));
    t.statfs("after unlink");
  });
}

TEST_F(CompareWithTmpfs, RenameFlags) {
  compare([](Trace& t) {
    write_file(t, "a", "A");
    write_file(t, "b", "B");
    t.rc("mkdir d", ::mkdir(t.p("d"), 0755));
    t.rc("mkdir e", ::mkdir(t.p("e"), 0755));
    write_file(t, "e/inside", "I");
    t.rc("mkdir empty", ::mkdir(t.p("empty"), 0755));
    t.rc("rename a c", ::renameat2(AT_FDCWD, t.p("a"), AT_FDCWD, t.p("c"), 0));
    t.rc("rename missing", ::renameat2(AT_FDCWD, t.p("a"), AT_FDCWD, t.p("x"), 0));
    t.rc("noreplace c b", ::renameat2(AT_FDCWD, t.p("c"), AT_FDCWD, t.p("b"), RENAME_NOREPLACE));
    t.rc("noreplace c n", ::renameat2(AT_FDCWD, t.p("c"), AT_FDCWD, t.p("n"), RENAME_NOREPLACE));
    t.rc("exchange n missing", ::renameat2(AT_FDCWD, t.p("n"), AT_FDCWD, t.p("missing"), RENAME_EXCHANGE));
    t.rc("exchange n d", ::renameat2(AT_FDCWD, t.p("n"), AT_FDCWD, t.p("d"), RENAME_EXCHANGE));
    t.stat("n");
    t.stat("d");
    t.rc("exchange|noreplace", ::renameat2(AT_FDCWD, t.p("n"), AT_FDCWD, t.p("d"), RENAME_EXCHANGE | RENAME_NOREPLACE));
    t.rc("replace b with c... (file over file)", ::renameat2(AT_FDCWD, t.p("d"), AT_FDCWD, t.p("b"), 0));
    t.add("b now " + read_file(t.path("b")));
    t.rc("dir over non-empty dir", ::rename(t.p("n"), t.p("e")));
    t.rc("dir over empty dir", ::rename(t.p("n"), t.p("empty")));
    t.rc("file over dir", ::rename(t.p("b"), t.p("e")));
    t.rc("dir over file", ::rename(t.p("e"), t.p("b")));
    t.rc("dir into itself", ::rename(t.p("e"), t.p("e/sub")));
    t.rc("same name", ::rename(t.p("b"), t.p("b")));
    t.rc("hard link pair", ::link(t.p("b"), t.p("b2")));
    t.rc("rename onto own hard link", ::rename(t.p("b"), t.p("b2")));
    t.stat("b");
    t.stat("b2");
    t.rc("mkdir e/sub", ::mkdir(t.p("e/sub"), 0755));
    t.rc("move dir across parents", ::rename(t.p("e/sub"), t.p("empty/sub")));
    t.stat("e");
    t.stat("empty");
    t.rc("exchange dirs across parents", ::renameat2(AT_FDCWD, t.p("empty/sub"), AT_FDCWD, t.p("e/inside"), RENAME_EXCHANGE));
    t.stat("e");
    t.stat("empty");
    t.list("");
    t.list("e");
    t.list("empty");
  });
}

TEST_F(CompareWithTmpfs, StickyRootDirectory) {
  compare([](Trace& t) {
    write_file(t, "victim", "v");
    t.rc("chown victim 1000", ::chown(t.p("victim"), 1000, 1000));
    t.as_user(1000, 1000, [](Trace& u) {
      write_file(u, "mine", "m");
      u.rc("chmod mine 0666", ::chmod(u.p("mine"), 0666));
    });
    t.as_user(2000, 2000, [](Trace& u) {
      u.rc("unlink other's file", ::unlink(u.p("victim")));
      u.rc("rename other's file", ::rename(u.p("victim"), u.p("stolen")));
      u.rc("rename over other's file", ::rename(u.p("mine"), u.p("victim")));
      u.rc("open other's 0644 for writing", ::open(u.p("victim"), O_WRONLY));
      u.rc("open other's 0666 for writing", ::open(u.p("mine"), O_WRONLY));
      u.rc("mkdir own", ::mkdir(u.p("dir2000"), 0755));
      u.rc("chmod own 1777", ::chmod(u.p("dir2000"), 01777));
      write_file(u, "dir2000/by2000", "x");
    });
    t.as_user(1000, 1000, [](Trace& u) {
      write_file(u, "dir2000/by1000", "y");
      u.rc("unlink own", ::unlink(u.p("victim")));
      u.rc("unlink other's in other's sticky dir", ::unlink(u.p("dir2000/by2000")));
    });
    t.as_user(2000, 2000, [](Trace& u) {
      u.rc("dir owner removes other's file", ::unlink(u.p("dir2000/by1000")));
      u.rc("unlink 1000's file in root", ::unlink(u.p("mine")));
    });
    t.list("");
    t.list("dir2000");
  });
}

TEST_F(CompareWithTmpfs, SetgidInheritanceAndPrivilegeBits) {
  compare([](Trace& t) {
    t.rc("mkdir g", ::mkdir(t.p("g"), 0777));
    t.rc("chown g :1234", ::chown(t.p("g"), 0, 1234));
    t.rc("chmod g 2777", ::chmod(t.p("g"), 02777));
    write_file(t, "g/by-root", "r");
    t.rc("mkdir g/sub", ::mkdir(t.p("g/sub"), 0755));
    t.stat("g");
    t.stat("g/by-root");
    t.stat("g/sub");
    t.as_user(1000, 1000, [](Trace& u) {
      write_file(u, "g/by-1000", "u");
      u.rc("mkdir g/sub1000", ::mkdir(u.p("g/sub1000"), 0777));
      u.stat("g/by-1000");
      u.stat("g/sub1000");
      write_file(u, "own", "o", 0755);
      u.rc("chmod own 2755 (not in group 0?)", ::chmod(u.p("own"), 02755));
      u.stat("own");
    });
    write_file(t, "suid", "s");
    t.rc("chown suid 1000", ::chown(t.p("suid"), 1000, 1000));
    t.rc("chmod suid 6755", ::chmod(t.p("suid"), 06755));
    t.stat("suid");
    t.as_user(1000, 1000, [](Trace& u) {
      int fd = ::open(u.p("suid"), O_WRONLY | O_APPEND);
      u.rc("write by owner", ::write(fd, "w", 1));
      ::close(fd);
      u.stat("suid");
    });
    t.rc("chmod suid 6755 again", ::chmod(t.p("suid"), 06755));
    t.as_user(1000, 1000, [](Trace& u) {
      u.rc("truncate by owner", ::truncate(u.p("suid"), 1));
      u.stat("suid");
    });
    t.rc("chmod suid 6755 third", ::chmod(t.p("suid"), 06755));
    t.rc("chown by root", ::chown(t.p("suid"), 1000, 1001));
    t.stat("suid");
    t.rc("chmod suid 6755 fourth", ::chmod(t.p("suid"), 06755));
    int fd = ::open(t.p("suid"), O_WRONLY | O_APPEND);
    t.rc("write by root", ::write(fd, "w", 1));
    ::close(fd);
    t.stat("suid");
  });
}

TEST_F(CompareWithTmpfs, PermissionDenialsForOtherUsers) {
  compare([](Trace& t) {
    t.as_user(1000, 1000, [](Trace& u) {
      write_file(u, "private", "secret", 0600);
      u.rc("chmod private 0600", ::chmod(u.p("private"), 0600));
      u.rc("mkdir closed", ::mkdir(u.p("closed"), 0700));
      u.rc("mkdir readonly", ::mkdir(u.p("readonly"), 0755));
      write_file(u, "closed/inner", "i");
    });
    t.as_user(2000, 2000, [](Trace& u) {
      u.rc("open private", ::open(u.p("private"), O_RDONLY));
      u.rc("truncate private", ::truncate(u.p("private"), 0));
      u.rc("chmod private", ::chmod(u.p("private"), 0666));
      u.rc("chown private", ::chown(u.p("private"), 2000, 2000));
      u.rc("utimensat private", ::utimensat(AT_FDCWD, u.p("private"), nullptr, 0));
      timespec ts[2] = {{1, 0}, {1, 0}};
      u.rc("utimensat private explicit", ::utimensat(AT_FDCWD, u.p("private"), ts, 0));
      u.rc("setxattr private", ::setxattr(u.p("private"), "user.x", "1", 1, 0));
      u.list("closed");
      u.stat("closed/inner");
      u.rc("create in readonly", ::open(u.p("readonly/x"), O_CREAT | O_WRONLY, 0644));
      u.rc("mkdir in readonly", ::mkdir(u.p("readonly/x"), 0755));
      u.rc("chown own file to someone else", ::chown(u.p(""), 2000, 2000));
    });
    t.as_user(1000, 1000, [](Trace& u) {
      u.rc("chown own file to another uid", ::chown(u.p("private"), 2000, 1000));
      u.rc("chgrp own file to a foreign group", ::chown(u.p("private"), 1000, 2000));
    });
  });
}

TEST_F(CompareWithTmpfs, Xattrs) {
  // Only errno and values: tmpfs charges xattrs to inode space, the store to the quota,
  // so statfs is not compared here.
  compare([](Trace& t) {
    write_file(t, "f", "data");
    t.rc("set user.a", ::setxattr(t.p("f"), "user.a", "hello", 5, 0));
    t.rc("get size", ::getxattr(t.p("f"), "user.a", nullptr, 0));
    char buf[256] = {};
    t.rc("get small buffer", ::getxattr(t.p("f"), "user.a", buf, 2));
    t.rc("get", ::getxattr(t.p("f"), "user.a", buf, sizeof buf));
    t.add(std::string("value ") + buf);
    t.rc("create existing", ::setxattr(t.p("f"), "user.a", "x", 1, XATTR_CREATE));
    t.rc("replace missing", ::setxattr(t.p("f"), "user.b", "x", 1, XATTR_REPLACE));
    t.rc("replace existing", ::setxattr(t.p("f"), "user.a", "xyz", 3, XATTR_REPLACE));
    t.rc("set empty value", ::setxattr(t.p("f"), "user.empty", "", 0, 0));
    t.rc("get empty", ::getxattr(t.p("f"), "user.empty", buf, sizeof buf));
    t.rc("set trusted.t", ::setxattr(t.p("f"), "trusted.t", "t", 1, 0));
    t.rc("set security.s", ::setxattr(t.p("f"), "security.s", "s", 1, 0));
    t.rc("set unknown namespace", ::setxattr(t.p("f"), "bogus.x", "s", 1, 0));
    t.rc("set name too long", ::setxattr(t.p("f"), ("user." + std::string(251, 'n')).c_str(), "s", 1, 0));
    std::string big(65537, 'v');
    t.rc("set value too big", ::setxattr(t.p("f"), "user.big", big.data(), big.size(), 0));
    t.rc("list size", ::listxattr(t.p("f"), nullptr, 0));
    char list[512] = {};
    long n = t.rc("list", ::listxattr(t.p("f"), list, sizeof list));
    std::vector<std::string> names;
    for (long i = 0; i < n; i += static_cast<long>(std::strlen(list + i)) + 1) names.push_back(list + i);
    std::sort(names.begin(), names.end());
    std::string joined;
    for (const auto& s : names) joined += s + " ";
    t.add("names " + joined);
    t.rc("list too small", ::listxattr(t.p("f"), list, 3));
    t.rc("remove missing", ::removexattr(t.p("f"), "user.zzz"));
    t.rc("remove user.a", ::removexattr(t.p("f"), "user.a"));
    t.rc("get removed", ::getxattr(t.p("f"), "user.a", buf, sizeof buf));
    t.rc("symlink", ::symlink("f", t.p("l")));
    t.rc("user.* on a symlink", ::lsetxattr(t.p("l"), "user.a", "x", 1, 0));
    t.rc("mkfifo", ::mkfifo(t.p("p"), 0644));
    t.rc("user.* on a fifo", ::setxattr(t.p("p"), "user.a", "x", 1, 0));
    t.rc("mkdir", ::mkdir(t.p("d"), 0755));
    t.rc("user.* on a directory", ::setxattr(t.p("d"), "user.a", "x", 1, 0));
    t.as_user(1000, 1000, [](Trace& u) {
      u.rc("trusted.* unprivileged", ::setxattr(u.p("d"), "trusted.x", "x", 1, 0));
      char b[16];
      u.rc("get trusted.* unprivileged", ::getxattr(u.p("f"), "trusted.t", b, sizeof b));
    });
  });
}

TEST_F(CompareWithTmpfs, CopyFileRangeAndSparseReads) {
  compare([](Trace& t) {
    std::string data;
    for (int i = 0; i < 20000; ++i) data += static_cast<char>('a' + i % 26);
    write_file(t, "src", data);
    int in = ::open(t.p("src"), O_RDONLY);
    int out = ::open(t.p("dst"), O_WRONLY | O_CREAT, 0644);
    loff_t off_in = 100, off_out = 5000;
    t.rc("copy_file_range", ::copy_file_range(in, &off_in, out, &off_out, 10000, 0));
    t.rc("copy_file_range past end", ::copy_file_range(in, &off_in, out, &off_out, 100000, 0));
    ::close(in);
    ::close(out);
    t.stat("dst");
    std::string got = read_file(t.path("dst"));
    t.add("dst zeros before 5000: " + std::to_string(std::count(got.begin(), got.begin() + 5000, '\0')));
    t.add("dst matches: " + std::string(got.substr(5000) == data.substr(100) ? "yes" : "no"));
    int fd = ::open(t.p("sparse"), O_RDWR | O_CREAT, 0644);
    t.rc("pwrite at 3 MiB", ::pwrite(fd, "end", 3, 3 << 20));
    std::string buf(1 << 20, 'x');
    t.rc("read a hole", ::pread(fd, buf.data(), buf.size(), 4096));
    t.add("hole zeros: " + std::to_string(std::count(buf.begin(), buf.end(), '\0')));
    t.rc("read across the end", ::pread(fd, buf.data(), buf.size(), (3 << 20) - 10));
    ::close(fd);
    t.stat("sparse");
    t.statfs();
  });
}

}  // namespace
}  // namespace hostchanfs::testing

namespace hostchanfs::testing {
namespace {

// The seed: iSulad's example, dd into a 32M channel. dd's report must be tmpfs's,
// line for line (only the timing at the end of the last line differs); df shows the
// channel full, and rm gives everything back.
TEST_F(CompareWithTmpfs, SeedDdMatchesTmpfs) {
  mount(32ull << 20, 1024);
  auto seen = compare([](Trace& t) {
    TempDir out("dd-stderr");
    std::string err_path = out.path() + "/stderr";
    int err_fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    auto dd = ChildProcess::spawn({"/bin/dd", "if=/dev/zero", "of=" + t.path("test.file"), "bs=1024", "count=64K"},
                                  {{err_fd, 2}});
    ::close(err_fd);
    t.add("dd exit " + std::to_string(dd.wait()));
    std::string text = read_file(err_path);
    ::unlink(err_path.c_str());
    std::size_t at;
    while ((at = text.find(t.root())) != std::string::npos) text.replace(at, t.root().size(), "MNT");
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      if (auto copied = line.find(" copied,"); copied != std::string::npos) line = line.substr(0, copied + 7);
      t.add("dd: " + line);
    }
    t.stat("test.file");
    t.statfs("df after dd");
    auto rm = ChildProcess::spawn({"/bin/rm", t.path("test.file")});
    t.add("rm exit " + std::to_string(rm.wait()));
    t.statfs("df after rm");
  });
  using ::testing::Contains;
  using ::testing::HasSubstr;
  EXPECT_THAT(seen, Contains(HasSubstr("error writing 'MNT/test.file': No space left on device")));
  EXPECT_THAT(seen, Contains("dd: 32769+0 records in"));
  EXPECT_THAT(seen, Contains("dd: 32768+0 records out"));
  EXPECT_THAT(seen, Contains("dd: 33554432 bytes (34 MB, 32 MiB) copied"));
  EXPECT_THAT(seen, Contains(HasSubstr("df after dd: bsize=4096 blocks=8192 bfree=0 ")));
  EXPECT_THAT(seen, Contains(HasSubstr("df after rm: bsize=4096 blocks=8192 bfree=8192 ")));
}

}  // namespace
}  // namespace hostchanfs::testing
