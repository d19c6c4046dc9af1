// --charge writer against kernel tmpfs (every ScopedHostchanfs here is writer-charged:
// HOSTCHANFS_TEST_CHARGE=writer; the whole comparison and IPC suites also run in that
// mode, tests/fs/CMakeLists.txt). What only the
// writer mode has to show: one quota for data and long symlinks (the store's pages are
// mirrored into the backing tmpfs). A MAP_SHARED store into a full channel killed by
// SIGBUS as on tmpfs: ipc_test.cpp; the refusals: serve_test.cpp.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "tests/fs/tmpfs_pair.hpp"

namespace hostchanfs::testing {
namespace {

class WriterCharge : public TmpfsPair {
 protected:
  void SetUp() override {
    ::setenv("HOSTCHANFS_TEST_CHARGE", "writer", 1);
    TmpfsPair::SetUp();
  }
};

// Long symlinks (a page each, tmpfs's rule) and file data draw on one quota: each kind
// stops where tmpfs stops, whichever fills it.
TEST_F(WriterCharge, LongSymlinksAndDataStopAtTmpfsByte) {
  mount(256 << 10, 1024);
  compare([](Trace& t) {
    std::string target(200, 't');
    int fd = ::open(t.p("data"), O_WRONLY | O_CREAT, 0644);
    std::string big((256 << 10) - 5 * 4096, 'd');
    t.rc("data", ::write(fd, big.data(), big.size()));
    t.statfs();
    for (int i = 0; i < 7; ++i)
      t.rc("symlink " + std::to_string(i), ::symlink(target.c_str(), t.p("l" + std::to_string(i))));
    t.rc("write after", ::write(fd, "x", 1));
    t.statfs();
    t.rc("unlink l0", ::unlink(t.p("l0")));
    t.rc("unlink l1", ::unlink(t.p("l1")));
    t.statfs();
    t.rc("write 1 page", ::write(fd, big.data(), 4096));
    t.rc("write 1 page more", ::write(fd, big.data(), 4096));
    t.rc("write 1 page again", ::write(fd, big.data(), 4096));
    t.rc("short symlink", ::symlink("short", t.p("s")));
    t.rc("long symlink", ::symlink(target.c_str(), t.p("l9")));
    ::close(fd);
    t.stat("data");
    t.rc("unlink data", ::unlink(t.p("data")));
    t.statfs();
  });
}

// O_TMPFILE goes through passthrough too: the kernel refuses to mix passthrough and
// cached opens of one inode (EIO), which an open by name after linkat would be while the
// unnamed file's descriptor is still open. Both descriptors read what either wrote, and
// the data draws on the quota like every other file's.
TEST_F(WriterCharge, ATmpfileLinkedAndOpenedByNameSharesItsData) {
  mount(1 << 20, 1024);
  compare([](Trace& t) {
    auto pread_line = [&](const std::string& label, int fd, std::size_t len) {
      std::string got(len, '\0');
      ssize_t n = ::pread(fd, got.data(), got.size(), 0);
      if (n < 0) return t.add(label + ": " + errno_name(errno));
      got.resize(static_cast<std::size_t>(n));
      t.add(label + ": " + got);
    };
    int tmp = static_cast<int>(t.ok("open O_TMPFILE", ::open(t.p(""), O_TMPFILE | O_RDWR, 0640)));
    t.rc("write", ::write(tmp, "unnamed,", 8));
    t.statfs("with an unnamed file");
    const std::string proc = "/proc/self/fd/" + std::to_string(tmp);
    t.rc("linkat", ::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, t.p("named"), AT_SYMLINK_FOLLOW));
    int named = static_cast<int>(t.ok("open by name", ::open(t.p("named"), O_RDWR)));
    t.rc("write by name", ::pwrite(named, "named,", 6, 8));
    t.rc("write unnamed again", ::pwrite(tmp, "tmp.", 4, 14));
    pread_line("through the unnamed one", tmp, 64);
    pread_line("through the named one", named, 64);
    std::string big(200 << 10, 'b');
    t.rc("write 200K unnamed", ::pwrite(tmp, big.data(), big.size(), 4096));
    t.statfs("with 200K more");
    t.stat("named");
    ::close(tmp);
    t.add("named holds " + std::to_string(read_file(t.path("named")).size()) + " bytes");
    ::close(named);
    t.rc("unlink", ::unlink(t.p("named")));
    t.statfs("after unlink");
  });
}

// An open for reading changes no atime on tmpfs; the read does (relatime: the atime is
// older than a day). Passthrough reads keep the backing file's atime, which is the
// file's, so an open alone leaves it too (channel mode stands the open in for reads the
// page cache answers, and moves it then).
TEST_F(WriterCharge, AnOpenForReadingLeavesTheAtimeAndTheReadMovesIt) {
  mount(1 << 20, 1024);
  compare([](Trace& t) {
    const timespec old_atime[2] = {{978307200, 0}, {0, UTIME_OMIT}};  // 2001-01-01
    auto atime_is_old = [&](const std::string& label) {
      struct stat st {};
      t.rc("stat " + label, ::stat(t.p("f"), &st));
      t.add(label + ": atime " + (st.st_atim.tv_sec == old_atime[0].tv_sec ? "old" : "moved"));
    };
    int fd = static_cast<int>(t.ok("create", ::open(t.p("f"), O_WRONLY | O_CREAT, 0644)));
    t.rc("write", ::write(fd, "data", 4));
    ::close(fd);
    for (int flags : {O_RDONLY, O_RDWR}) {
      const std::string how = flags == O_RDONLY ? "O_RDONLY" : "O_RDWR";
      t.rc("touch -a -d 2001-01-01", ::utimensat(AT_FDCWD, t.p("f"), old_atime, 0));
      fd = static_cast<int>(t.ok("open " + how, ::open(t.p("f"), flags)));
      ::close(fd);
      atime_is_old("after an open " + how + " and close");
      fd = static_cast<int>(t.ok("open " + how + " again", ::open(t.p("f"), flags)));
      char buf[8];
      t.rc("read", ::read(fd, buf, sizeof buf));
      ::close(fd);
      atime_is_old("after a read through " + how);
    }
  });
}

}  // namespace
}  // namespace hostchanfs::testing
