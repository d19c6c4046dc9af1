// What a channel is for besides files: FIFOs, Unix sockets and MAP_SHARED mappings
// between two processes, and inotify events for changes made through the mount.
#include <poll.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <csignal>
#include <cstring>
#include <string>

#include "sys/errno_text.hpp"
#include "sys/unix_socket.hpp"
#include "tests/fs/tmpfs_pair.hpp"

namespace hostchanfs::testing {
namespace {

// A one-shot signal between two processes (a pipe): the child says "go" once ready.
class Handshake {
 public:
  Handshake() {
    if (::pipe2(fds_, O_CLOEXEC) < 0) throw std::runtime_error("pipe2");
  }
  ~Handshake() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  void signal() { (void)!::write(fds_[1], "g", 1); }
  bool wait() {
    char c;
    return ::read(fds_[0], &c, 1) == 1;
  }

 private:
  int fds_[2];
};

class Ipc : public TmpfsPair {
 protected:
  void SetUp() override {
    TmpfsPair::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    mount(8 << 20, 1024);
  }
  std::string at(const std::string& name) { return hostchanfs_path() + "/" + name; }
};

TEST_F(Ipc, FifoBetweenTwoProcesses) {
  ASSERT_EQ(::mkfifo(at("fifo").c_str(), 0666), 0);
  std::string path = at("fifo");
  auto writer = ChildProcess::fork([&] {
    int fd = ::open(path.c_str(), O_WRONLY);
    if (fd < 0) return 1;
    return ::write(fd, "through the fifo", 16) == 16 ? 0 : 2;
  });
  int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::string got;
  char buf[64];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) got.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  EXPECT_EQ(got, "through the fifo");
  EXPECT_EQ(writer.wait(), 0);
}

TEST_F(Ipc, UnixSocketServerAndClientInTwoProcesses) {
  std::string path = at("sock");
  auto address = unix_address(path);
  ASSERT_TRUE(address);
  const UnixAddress& addr = address.value();
  Handshake listening;
  auto server = ChildProcess::fork([&] {
    int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::bind(s, addr.get(), addr.size()) < 0 || ::listen(s, 1) < 0) return 1;
    listening.signal();
    int c = ::accept(s, nullptr, nullptr);
    char buf[16] = {};
    if (c < 0 || ::read(c, buf, 4) != 4 || std::string(buf) != "ping") return 2;
    return ::write(c, "pong", 4) == 4 ? 0 : 3;
  });
  ASSERT_TRUE(listening.wait());
  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  int c = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::connect(c, addr.get(), addr.size()), 0) << errno_text(errno);
  ASSERT_EQ(::write(c, "ping", 4), 4);
  char buf[8] = {};
  ASSERT_EQ(::read(c, buf, 4), 4);
  EXPECT_STREQ(buf, "pong");
  ::close(c);
  EXPECT_EQ(server.wait(), 0);
}

TEST_F(Ipc, SharedMappingIsCoherentAcrossProcesses) {
  constexpr std::size_t kSize = 64 << 10;
  std::string path = at("shm");
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0666);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, kSize), 0);
  auto* mine = static_cast<volatile char*>(::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  ASSERT_NE(mine, MAP_FAILED);
  Handshake written, answered;
  auto child = ChildProcess::fork([&] {
    int cfd = ::open(path.c_str(), O_RDWR);
    auto* theirs = static_cast<volatile char*>(::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, 0));
    if (theirs == MAP_FAILED) return 1;
    for (std::size_t i = 0; i < kSize; i += 4096) theirs[i] = static_cast<char>('a' + (i / 4096) % 26);
    written.signal();
    if (!answered.wait()) return 2;
    return theirs[kSize - 1] == 'Z' ? 0 : 3;
  });
  ASSERT_TRUE(written.wait());
  for (std::size_t i = 0; i < kSize; i += 4096)
    ASSERT_EQ(mine[i], static_cast<char>('a' + (i / 4096) % 26)) << "page " << i / 4096;
  char via_read = 0;
  ASSERT_EQ(::pread(fd, &via_read, 1, 4096 * 3), 1);
  EXPECT_EQ(via_read, 'd');
  mine[kSize - 1] = 'Z';
  answered.signal();
  EXPECT_EQ(child.wait(), 0);
  ASSERT_EQ(::msync(const_cast<char*>(mine), kSize, MS_SYNC), 0);
  ::munmap(const_cast<char*>(mine), kSize);
  ::close(fd);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(kSize));
  EXPECT_EQ(st.st_blocks, static_cast<blkcnt_t>(kSize / 512));  // every page was written
}

// A known difference, pinned: a store through a mapping into a hole of a full channel.
// tmpfs allocates the page at the fault, finds no room and kills the process (SIGBUS). A
// FUSE write fault never reaches the daemon, so on hostchanfs the store lands in the page
// cache and ENOSPC comes back from its write-back: msync (or close) reports it. With
// --charge writer (this suite runs in both modes) the mapping is the backing tmpfs's
// own, and the store is killed by SIGBUS exactly as on tmpfs.
TEST_F(Ipc, AStoreIntoAHoleOfAFullChannelIsSigbusOnTmpfsAndEnospcAtMsyncHere) {
  constexpr std::size_t kChannel = 1 << 20;
  mount(kChannel, 1024);
  auto store_into_hole = [](const std::string& dir) {
    return ChildProcess::fork([dir] {
      // The SIGBUS expected on tmpfs kills the child plainly (a sanitizer's handler would
      // turn it into exit 1) and leaves no core file behind.
      struct sigaction plain {};
      plain.sa_handler = SIG_DFL;
      ::sigaction(SIGBUS, &plain, nullptr);
      rlimit no_core{0, 0};
      ::setrlimit(RLIMIT_CORE, &no_core);
      int full = ::open((dir + "/full").c_str(), O_WRONLY | O_CREAT, 0644);
      std::string page(4096, 'x');
      for (std::size_t i = 0; i < kChannel / page.size(); ++i)
        if (::write(full, page.data(), page.size()) != static_cast<ssize_t>(page.size())) return 1;
      int fd = ::open((dir + "/sparse").c_str(), O_RDWR | O_CREAT, 0644);
      if (full < 0 || fd < 0 || ::ftruncate(fd, 4 * 4096) < 0) return 2;
      auto* m = static_cast<volatile char*>(::mmap(nullptr, 4 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
      if (m == MAP_FAILED) return 3;
      m[0] = 'A';
      if (::msync(const_cast<char*>(m), 4 * 4096, MS_SYNC) == 0) return 0;
      return errno == ENOSPC ? 28 : 4;
    });
  };
  EXPECT_EQ(store_into_hole(tmpfs_path()).wait(), 128 + SIGBUS);
  const char* charge = std::getenv("HOSTCHANFS_TEST_CHARGE");
  if (charge && std::string(charge) == "writer") {
    EXPECT_EQ(store_into_hole(hostchanfs_path()).wait(), 128 + SIGBUS) << "writer: as tmpfs";
  } else {
    EXPECT_EQ(store_into_hole(hostchanfs_path()).wait(), 28) << "28: msync failed with ENOSPC";
  }
}

// POSIX record locks and flock: the kernel keeps them for the mount (no lock handlers),
// and they hold between processes.
TEST_F(Ipc, PosixLocksAndFlockHoldBetweenProcesses) {
  std::string path = at("locked");
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0666);
  ASSERT_GE(fd, 0);
  struct flock lk {};
  lk.l_type = F_WRLCK;
  lk.l_whence = SEEK_SET;
  lk.l_len = 100;
  ASSERT_EQ(::fcntl(fd, F_SETLK, &lk), 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  auto other = ChildProcess::fork([&] {
    int cfd = ::open(path.c_str(), O_RDWR);
    struct flock want {};
    want.l_type = F_WRLCK;
    want.l_whence = SEEK_SET;
    want.l_len = 10;
    if (::fcntl(cfd, F_SETLK, &want) == 0 || (errno != EAGAIN && errno != EACCES)) return 1;
    if (::fcntl(cfd, F_GETLK, &want) < 0 || want.l_type != F_WRLCK || want.l_pid != ::getppid()) return 2;
    if (::flock(cfd, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK) return 3;
    want.l_start = 200;  // beyond the parent's range: free
    return ::fcntl(cfd, F_SETLK, &want) == 0 ? 0 : 4;
  });
  EXPECT_EQ(other.wait(), 0);
  ::close(fd);
}

// inotify: the same events, in the same order, for the same steps on both.
TEST_F(Ipc, InotifyEventsMatchTmpfs) {
  compare([](Trace& t) {
    ASSERT_EQ(::mkdir(t.p("watched"), 0755), 0);
    int in = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    ASSERT_GE(in, 0);
    ASSERT_GE(::inotify_add_watch(in, t.p("watched"), IN_ALL_EVENTS), 0);
    write_file(t, "watched/a", "hello");
    t.rc("rename a b", ::rename(t.p("watched/a"), t.p("watched/b")));
    t.rc("chmod b", ::chmod(t.p("watched/b"), 0600));
    t.rc("truncate b", ::truncate(t.p("watched/b"), 1));
    t.rc("mkdir sub", ::mkdir(t.p("watched/sub"), 0755));
    t.rc("rmdir sub", ::rmdir(t.p("watched/sub")));
    t.rc("link b c", ::link(t.p("watched/b"), t.p("watched/c")));
    t.rc("unlink b", ::unlink(t.p("watched/b")));
    t.rc("move c out", ::rename(t.p("watched/c"), t.p("outside")));
    alignas(inotify_event) char buf[8192];
    ssize_t n = ::read(in, buf, sizeof buf);
    for (ssize_t i = 0; i < n;) {
      auto* e = reinterpret_cast<inotify_event*>(buf + i);
      char mask[16];
      std::snprintf(mask, sizeof mask, "%08x", e->mask);
      t.add(std::string("event ") + mask + " " + (e->len ? e->name : ""));
      i += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
    }
    ::close(in);
  });
}

}  // namespace
}  // namespace hostchanfs::testing
