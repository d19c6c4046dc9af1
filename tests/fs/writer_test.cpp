// --charge writer against kernel tmpfs (every ScopedHostchanfs here is writer-charged:
// HOSTCHANFS_TEST_CHARGE=writer; the whole comparison and IPC suites also run in that
// mode, tests/fs/CMakeLists.txt). What only the
// writer mode has to show: one quota for data and long symlinks (the store's pages are
// mirrored into the backing tmpfs). A MAP_SHARED store into a full channel killed by
// SIGBUS as on tmpfs: ipc_test.cpp; the refusals: serve_test.cpp.
#include <fcntl.h>
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

}  // namespace
}  // namespace hostchanfs::testing
