// `hostchanfs run` end to end, on runc and on crun: the seed's dd, data exchange between a
// host process and a process in the container (file, MAP_SHARED mapping, FIFO, Unix
// socket), a read-only channel, a container path through a symlink out of the rootfs, exit
// status, signals, the memory limit, and cleanup when `run` itself is killed, when it
// loses its controller or its runtime. Each test has its own controller (harness.hpp) and
// checks that nothing is left (run_harness.hpp). The attacks are run_hostile_test.cpp's.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/un.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <fmt/format.h>

#include "mountctl/oci_runtime.hpp"
#include "sys/mapping.hpp"
#include "sys/scope_guard.hpp"
#include "sys/unique_fd.hpp"
#include "sys/unix_socket.hpp"
#include "tests/mountctl/harness.hpp"
#include "tests/mountctl/run_harness.hpp"
#include "tests/support/files.hpp"
#include "tests/support/fuse_required.hpp"

namespace hostchanfs::testing {
namespace {

using json = nlohmann::json;
namespace fsys = std::filesystem;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// dd's report without its timing ("..., 0.07 s, 438 MB/s" differs run to run).
std::vector<std::string> dd_report(const std::string& text, const std::string& path) {
  std::vector<std::string> out;
  for (auto line : lines_of(text)) {
    if (line.rfind("dd:", 0) != 0 && line.find("records") == std::string::npos &&
        line.find("copied") == std::string::npos) {
      continue;
    }
    if (auto at = line.find(path); at != std::string::npos) line.replace(at, path.size(), "PATH");
    if (auto at = line.find(" copied"); at != std::string::npos) line.resize(at + 7);
    out.push_back(line);
  }
  return out;
}

class RunTest : public RunFixture {};
HOSTCHANFS_RUN_ON_EVERY_RUNTIME(RunTest);

TEST_P(RunTest, SeedDdPrintsWhatTmpfsPrintsAndTheHostSeesTheFile) {
  const std::string dd = "dd if=/dev/zero of=/testdir/test.file bs=1024 count=64K";
  // The reference: the same dd on a kernel tmpfs of the same size.
  std::string reference;
  {
    ScopedTmpfs tmpfs(32ull << 20);
    std::string cmd = "dd if=/dev/zero of=" + tmpfs.path() + "/test.file bs=1024 count=64K";
    int err = ::memfd_create("ref", MFD_CLOEXEC);
    ChildProcess ref = ChildProcess::spawn({"/bin/sh", "-c", cmd}, {{err, 2}});
    ref.wait();
    reference = read_all(err);
    ::close(err);
    reference = [&] {
      std::string r = reference;
      for (auto at = r.find(tmpfs.path()); at != std::string::npos; at = r.find(tmpfs.path()))
        r.replace(at, tmpfs.path().size(), "/testdir");
      return r;
    }();
  }
  auto want = dd_report(reference, "/testdir/test.file");
  ASSERT_EQ(want.size(), 4u) << reference;

  std::string host = world_->path("testdir");
  Cli run(run_args({"--host-channel", host + ":/testdir:rw:32M", "--", "/bin/sh", "-c",
                    dd + "; touch /testdir/dd-done; while [ ! -e /testdir/host-done ]; do sleep 0.05; done"}));
  await_channel(host, run);
  ASSERT_TRUE(run.eventually([&] { return exists(host + "/dd-done"); })) << run.err_so_far();
  // While CMD runs, the host sees the file and a full channel.
  struct stat st {};
  ASSERT_EQ(::stat((host + "/test.file").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 33554432);
  struct statvfs sv {};
  ASSERT_EQ(::statvfs(host.c_str(), &sv), 0);
  EXPECT_EQ(sv.f_bfree, 0u);
  json list = ls();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["bytes_used"], 33554432u);
  EXPECT_EQ(list[0]["container_path"], "/testdir");
  pid_t daemon = list[0]["daemon_pid"].get<pid_t>();
  { std::ofstream(host + "/host-done") << ""; }

  CliResult r = run.wait();
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(dd_report(r.err, "/testdir/test.file"), want) << r.err;
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos);
  EXPECT_FALSE(exists(host)) << "the host path goes with the channel";
  EXPECT_EQ(::kill(daemon, 0), -1) << "the daemon is gone";
  EXPECT_EQ(ls().size(), 0u);
}

TEST_P(RunTest, HostAndContainerExchangeDataThroughFileMappingFifoAndSocket) {
  std::string host = world_->path("chan");
  // Through -c: the container has a /tmp of its own, so a file of ours there is not in it.
  const std::string script = R"(import mmap, os, socket, sys, time
C = "/chan"
while not os.path.exists(C + "/go"):
    time.sleep(0.01)
msg = open(C + "/h2c.txt").read()
with open(C + "/c2h.tmp", "w") as f:
    f.write(msg[::-1])
os.rename(C + "/c2h.tmp", C + "/c2h.txt")
fd = os.open(C + "/shm", os.O_RDWR)
m = mmap.mmap(fd, 4096, mmap.MAP_SHARED)
while m[0:5] != b"host!":
    time.sleep(0.01)
m[100:105] = b"cont!"
with open(C + "/fifo", "w") as f:
    f.write("through the fifo\n")
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(C + "/sock")
s.sendall(b"ping")
reply = s.recv(4)
print("socket got", reply.decode(), flush=True)
sys.exit(0 if reply == b"pong" else 3)
)";
  Cli run(run_args({"--host-channel", host + ":/chan:rw:4M", "--", "/usr/bin/python3", "-c", script}));
  await_channel(host, run);

  // Container root is not host root (a user namespace): what the host makes for it to
  // write is writable by others, as for any unprivileged peer.
  mode_t old_umask = ::umask(0);
  ScopeGuard restore_umask([&] { ::umask(old_umask); });
  { std::ofstream(host + "/h2c.txt") << "hello from the host"; }
  // Owned, so that a failure halfway lets go of the channel: its daemon can then end,
  // and TearDown does not wait for it in vain.
  UniqueFd shm(::open((host + "/shm").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666));
  ASSERT_TRUE(shm);
  ASSERT_EQ(::ftruncate(shm.get(), 4096), 0);
  auto mapping = Mapping::map_shared(shm.get(), 4096);
  ASSERT_TRUE(mapping);
  auto* map = reinterpret_cast<char*>(mapping.value().data());
  std::memcpy(map, "host!", 5);
  ASSERT_EQ(::mkfifo((host + "/fifo").c_str(), 0666), 0);
  UniqueFd fifo(::open((host + "/fifo").c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  ASSERT_TRUE(fifo);
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  auto addr = unix_address(host + "/sock");
  ASSERT_TRUE(addr);
  ASSERT_EQ(::bind(listener.get(), addr.value().get(), addr.value().size()), 0);
  ASSERT_EQ(::listen(listener.get(), 1), 0);
  { std::ofstream(host + "/go") << ""; }

  EXPECT_TRUE(run.eventually([&] { return read_file(host + "/c2h.txt") == "tsoh eht morf olleh"; }))
      << run.err_so_far();
  EXPECT_TRUE(run.eventually([&] { return std::memcmp(map + 100, "cont!", 5) == 0; }))
      << "a MAP_SHARED write in the container reaches the host's mapping";
  std::string got;
  EXPECT_TRUE(run.eventually([&] {
    char buf[64];
    ssize_t n = ::read(fifo.get(), buf, sizeof buf);
    if (n > 0) got.append(buf, static_cast<std::size_t>(n));
    return got == "through the fifo\n";
  })) << got;
  ASSERT_TRUE(run.eventually([&] {
    pollfd p{listener.get(), POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
  })) << run.err_so_far();
  UniqueFd conn(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(conn);
  char ping[4];
  ASSERT_EQ(::recv(conn.get(), ping, 4, MSG_WAITALL), 4);
  EXPECT_EQ(std::string(ping, 4), "ping");
  ASSERT_EQ(::send(conn.get(), "pong", 4, MSG_NOSIGNAL), 4);

  CliResult r = run.wait();
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "socket got pong\n");
}

TEST_P(RunTest, ReadOnlyChannelRefusesEveryWriteFromInsideButNotFromTheHost) {
  std::string host = world_->path("ro");
  // mount(8) hands fuse.* types to a helper: the system calls themselves are tried too.
  const std::string script = R"(C=/chan
SYSCALLS='
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
MS_REMOUNT, MS_BIND = 32, 4096
class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]
what = sys.argv[1]
if what == "remount":
    rc = libc.mount(None, b"/chan", None, MS_REMOUNT, None)
elif what == "remount-bind":
    rc = libc.mount(None, b"/chan", None, MS_REMOUNT | MS_BIND, None)
else:
    attr = MountAttr(0, 1, 0, 0)  # clear MOUNT_ATTR_RDONLY
    rc = libc.syscall(442, -100, b"/chan", 0, ctypes.byref(attr), ctypes.sizeof(attr))
sys.exit(0 if rc == 0 else 1)
'
while [ ! -e $C/ready ]; do sleep 0.05; done
try() { if "$@" 2>/dev/null; then echo "ALLOWED: $*"; else echo "refused: $*"; fi; }
try sh -c "echo x >> $C/ready"
try sh -c "echo x > $C/ready"
try touch $C/new
try touch $C/ready
try mkdir $C/dir
try mv $C/ready $C/moved
try chmod 600 $C/ready
try chown 1:1 $C/ready
try truncate -s 0 $C/ready
try rm $C/ready
try ln -s x $C/link
try ln $C/ready $C/hardlink
try mkfifo $C/fifo
try mount -i -o remount,rw $C
try mount -i -o remount,bind,rw $C
try mount -i -t tmpfs none $C
try umount -i $C
try umount -i -l $C
try /usr/bin/python3 -c "$SYSCALLS" remount
try /usr/bin/python3 -c "$SYSCALLS" remount-bind
try /usr/bin/python3 -c "$SYSCALLS" setattr-rw
try sh -c "echo y >> $C/ready"
echo attempts done
while [ ! -e $C/host-after ]; do sleep 0.05; done
cat $C/ready $C/host-after
)";
  Cli run(run_args({"--host-channel", host + ":/chan:ro:1M", "--", "/bin/sh", "-c", script}));
  await_channel(host, run);
  { std::ofstream(host + "/ready") << "host data\n"; }
  ASSERT_TRUE(run.eventually([&] { return run.out_so_far().find("attempts done") != std::string::npos; }))
      << run.err_so_far();
  { std::ofstream(host + "/host-after") << "host wrote after\n"; }
  CliResult r = run.wait();
  EXPECT_EQ(r.status, 0) << r.err;
  auto lines = lines_of(r.out);
  EXPECT_EQ(std::count_if(lines.begin(), lines.end(), [](auto& l) { return l.rfind("refused:", 0) == 0; }), 22)
      << r.out;
  EXPECT_EQ(r.out.find("ALLOWED"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("host data\nhost wrote after\n"), std::string::npos)
      << "reads work and the host's writes show: " << r.out;
}

TEST_P(RunTest, ContainerPathThroughASymlinkOutOfTheRootfsLandsInside) {
  std::string rootfs = world_->path("rootfs");
  oci::make_busybox_rootfs(rootfs);
  TempDir decoy("decoy");  // a real directory outside the rootfs
  fsys::create_directory_symlink(decoy.path(), rootfs + "/link");
  std::string host = world_->path("chan");
  Cli run(run_args({"--rootfs", rootfs, "--host-channel", host + ":/link/chan:rw:1M", "--", "/bin/sh",
                    "-c",
                    "echo hi > /link/chan/f && dd if=/dev/zero of=/link/chan/z bs=4k count=1 2>/dev/null && "
                    "touch /link/chan/done && while [ ! -e /link/chan/host-done ]; do sleep 0.05; done"}));
  await_channel(host, run);
  ASSERT_TRUE(run.eventually([&] { return exists(host + "/done"); })) << run.err_so_far();
  EXPECT_EQ(read_file(host + "/f"), "hi\n");
  EXPECT_FALSE(exists(decoy.path() + "/chan")) << "the mount point was not made outside";
  EXPECT_TRUE(fsys::is_directory(rootfs + decoy.path() + "/chan")) << "it was made inside the rootfs";
  { std::ofstream(host + "/host-done") << ""; }
  CliResult r = run.wait();
  EXPECT_EQ(r.status, 0) << r.err;
  fsys::remove_all(rootfs + "/tmp");  // the decoy path made inside the rootfs
}

TEST_P(RunTest, ExitStatusIsCommandsAndUserIsApplied) {
  std::string host = world_->path("chan");
  auto r = run({"--host-channel", host + ":/chan::1M", "--", "/bin/sh", "-c", "exit 7"});
  EXPECT_EQ(r.status, 7) << r.err;
  EXPECT_FALSE(exists(host));

  r = run({"--user", "1000:1000", "--host-channel", host + ":/chan::1M", "--", "/bin/sh", "-c",
           "id -u; id -g; echo mine > /chan/f && stat -c %u /chan/f"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "1000\n1000\n1000\n");

  r = run({"--host-channel", host + ":/chan::1M", "--", "/nonexistent/cmd"});
  EXPECT_EQ(r.status, 127);
  EXPECT_NE(r.err.find("cannot run /nonexistent/cmd"), std::string::npos) << r.err;
  EXPECT_FALSE(exists(host));
}

TEST_P(RunTest, SignalsReachTheCommand) {
  std::string host = world_->path("chan");
  for (auto [sig, name, status] : {std::tuple{SIGTERM, "TERM", 42}, std::tuple{SIGINT, "INT", 43}}) {
    std::string trap = fmt::format("trap 'echo got {}; exit {}' {}; ", name, status, name);
    Cli run(run_args({"--host-channel", host + ":/chan::1M", "--", "/bin/sh", "-c",
                      trap + "touch /chan/ready; while :; do sleep 0.05; done"}));
    await_channel(host, run);
    ASSERT_TRUE(run.eventually([&] { return exists(host + "/ready"); })) << run.err_so_far();
    run.signal(sig);
    CliResult r = run.wait();
    EXPECT_EQ(r.status, status) << r.err;
    EXPECT_EQ(r.out, fmt::format("got {}\n", name));
    EXPECT_FALSE(exists(host));
  }
}

// No terminal: the container's stdin, stdout and stderr are ours.
TEST_P(RunTest, StdioIsPassedThrough) {
  oci::CommandOptions options;
  options.stdin_text = "from the host's stdin\n";
  auto r = oci::run_command({HOSTCHANFS_BIN, "run", "--runtime", GetParam(), "--host-channel",
                             world_->path("chan") + ":/chan::1M", "--", "/bin/sh", "-c",
                             "cat; echo to stderr >&2; [ -t 0 ] || echo no terminal"},
                            options);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "from the host's stdin\nno terminal\n");
  EXPECT_EQ(r.err, "to stderr\n");
}

TEST_P(RunTest, KillingRunRemovesTheChannel) {
  std::string host = world_->path("chan");
  Cli run(run_args({"--host-channel", host + ":/chan::1M", "--", "/bin/sh", "-c",
                    "touch /chan/ready; sleep 1000"}));
  await_channel(host, run);
  ASSERT_TRUE(run.eventually([&] { return exists(host + "/ready"); })) << run.err_so_far();
  run.signal(SIGKILL);
  run.wait();
  // The controller watches `run` (its owner): the container dies with run, the channel
  // with both.
  EXPECT_TRUE(eventually([&] { return !exists(host); })) << world_->controller_log();
  EXPECT_TRUE(eventually([&] { return processes_naming("sleep 1000").empty(); }));
  EXPECT_EQ(ls().size(), 0u);
}

TEST_P(RunTest, BadInputChangesNothing) {
  std::string host = world_->path("chan");
  auto r = run({"--host-channel", host + ":chan::1M", "--", "/bin/true"});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "hostchanfs run: container path \"chan\" is not an absolute path: give a path that starts with /\n");
  r = run({"--rootfs", world_->path("missing"), "--host-channel", host + ":/chan::1M", "--", "/bin/true"});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "hostchanfs run: --rootfs \"" + world_->path("missing") + "\" is not a directory\n");
  r = run({"--user", "no-such-user-here", "--host-channel", host + ":/chan::1M", "--", "/bin/true"});
  EXPECT_EQ(r.status, 2);
  for (const auto& [args, line] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--memory", "24 parsecs"}, "--memory \"24 parsecs\" is not a size of at least 6M"},
           {{"--memory", "1M"}, "--memory \"1M\" is not a size of at least 6M"},
           {{"--userns", "shared"}, "--userns \"shared\" is neither private nor host"},
           {{"--user", "70000"}, "--user \"70000\" is outside the container's user namespace"},
           {{"--rootfs", "/"}, "--rootfs / is the host's own root"},
           {{"--host-channel", host + "2:/chan2::1M"}, "give --host-channel once"}}) {
    std::vector<std::string> argv = args;
    argv.insert(argv.end(), {"--host-channel", host + ":/chan::1M", "--", "/bin/true"});
    r = run(argv);
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_EQ(r.err.rfind("hostchanfs run: " + line, 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  r = hostchanfs({"run", "--runtime", "/nonexistent/runtime", "--host-channel", host + ":/chan::1M", "--",
                  "/bin/true"});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(r.err.rfind("hostchanfs run: --runtime \"/nonexistent/runtime\" is not an executable", 0), 0u) << r.err;
  EXPECT_FALSE(exists(host));
  EXPECT_FALSE(world_->controller_pid()) << "bad input starts no controller";
}

// The seed's note, shown: a container limited to 24M writes 48 MiB into a 64M channel and
// is not OOM-killed (the channel's memory is its daemon's, not the container's), while the
// same write into a tmpfs of the container kills it.
TEST_P(RunTest, MemoryLimitDoesNotCoverTheChannel) {
  std::string host = world_->path("chan");
  auto r = run({"--memory", "24M", "--host-channel", host + ":/chan:rw:64M", "--", "/bin/sh", "-c",
                "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null; "
                "dd if=/dev/zero of=/chan/f bs=1M count=48 2>&1 && stat -c %s /chan/f"});
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(r.out.rfind("25165824\n", 0), 0u) << "the limit is the container's: " << r.out;
  EXPECT_NE(r.out.find("48+0 records out"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\n50331648\n"), std::string::npos) << r.out;

  r = run({"--memory", "24M", "--host-channel", host + ":/chan:rw:64M", "--", "/bin/sh", "-c",
           "dd if=/dev/zero of=/tmp/f bs=1M count=48"});
  EXPECT_EQ(r.status, 128 + SIGKILL) << "the same write into the container's tmpfs is OOM-killed: " << r.err;
  EXPECT_FALSE(exists(host));
}

// --charge writer gives the other trade (iSulad's, tmpfs's): the writer pays. The same
// 24M container writing 48 MiB into a writer-charged 64M channel is OOM-killed, as with
// its own tmpfs; with room to spare, what it wrote is in its cgroup's shmem (the backing
// tmpfs's pages), where a channel-charged channel leaves none. Not a timing: the kill and
// the cgroup's own count.
TEST_P(RunTest, WriterChargeMakesTheContainerPay) {
  std::string host = world_->path("chan");
  auto r = run({"--memory", "24M", "--charge", "writer", "--host-channel", host + ":/chan:rw:64M", "--",
                "/bin/sh", "-c", "dd if=/dev/zero of=/chan/f bs=1M count=48"});
  EXPECT_EQ(r.status, 128 + SIGKILL) << "a writer-charged channel is charged like tmpfs: " << r.err;
  EXPECT_FALSE(exists(host));

  const std::string shmem_after_16m =
      "dd if=/dev/zero of=/chan/f bs=1M count=16 2>/dev/null && "
      "{ cat /sys/fs/cgroup/memory/memory.stat /sys/fs/cgroup/memory.stat 2>/dev/null; true; } | "
      "sed -n 's/^shmem //p'";
  auto shmem_of = [&](const char* charge) -> std::uint64_t {
    auto got = run({"--memory", "256M", "--charge", charge, "--host-channel", host + ":/chan:rw:64M", "--",
                    "/bin/sh", "-c", shmem_after_16m});
    EXPECT_EQ(got.status, 0) << charge << ": " << got.out << got.err;
    EXPECT_FALSE(got.out.empty()) << charge << ": no shmem line in memory.stat";
    return got.out.empty() ? 0 : std::stoull(got.out);
  };
  EXPECT_GE(shmem_of("writer"), 16u << 20) << "writer: the container's cgroup holds what it wrote";
  EXPECT_LT(shmem_of("channel"), 1u << 20) << "channel: none of it is the container's";
}

// A controller that dies under a running container: the container is stopped, `run`
// exits 1 with one line, and the channel goes (a new controller takes the registry over
// to remove it).
TEST_P(RunTest, LosingTheControllerStopsTheContainerAndRemovesTheChannel) {
  std::string host = world_->path("chan");
  Cli run(run_args({"--host-channel", host + ":/chan::1M", "--", "/bin/sh", "-c", "touch /chan/ready; sleep 1000"}));
  await_channel(host, run);
  ASSERT_TRUE(run.eventually([&] { return exists(host + "/ready"); })) << run.err_so_far();
  auto controller = world_->controller_pid();
  ASSERT_TRUE(controller);
  ASSERT_EQ(::kill(*controller, SIGKILL), 0);
  CliResult r = run.wait();
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("hostchanfs run: lost the controller"), std::string::npos) << r.err;
  EXPECT_FALSE(exists(host));
  EXPECT_FALSE(is_fuse_mount(host));
  EXPECT_EQ(ls().size(), 0u);
}

// A runtime that dies (killed at `start`) or fails (at `create`): `run` exits 1 and leaves
// no channel, container or bundle (TearDown).
TEST_P(RunTest, ARuntimeThatDiesOrFailsLeavesNothing) {
  std::string real = oci::run_command({"sh", "-c", "command -v " + GetParam()}).out;
  real.erase(real.find_last_not_of('\n') + 1);
  std::string dying = world_->path("dying-runtime"), failing = world_->path("failing-runtime");
  {
    std::ofstream(dying) << "#!/bin/sh\nfor a; do [ \"$a\" = start ] && kill -9 $$; done\nexec " << real << " \"$@\"\n";
    std::ofstream(failing) << "#!/bin/sh\nfor a; do [ \"$a\" = create ] && { echo no way >&2; exit 3; }; done\n"
                           << "exec " << real << " \"$@\"\n";
  }
  fsys::permissions(dying, fsys::perms(0755));
  fsys::permissions(failing, fsys::perms(0755));
  std::string host = world_->path("chan");
  for (const auto& runtime : {dying, failing}) {
    auto r = hostchanfs({"run", "--runtime", runtime, "--host-channel", host + ":/chan::1M", "--", "/bin/true"});
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_NE(r.err.find("hostchanfs run: " + runtime + " could not"), std::string::npos) << r.err;
    EXPECT_FALSE(exists(host));
    EXPECT_EQ(ls().size(), 0u);
  }
}

// The hook refuses (a mount point it cannot make: /proc is the container's procfs): its
// one line reaches our stderr on both runtimes (crun writes it to the bundle's hooks.log,
// runc quotes it), and nothing is left.
TEST_P(RunTest, AHookThatFailsSaysWhy) {
  std::string host = world_->path("chan");
  auto r = run({"--host-channel", host + ":/proc/chan::1M", "--", "/bin/true"});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("container path /proc/chan: cannot make the mount point"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("hostchanfs run: "), std::string::npos) << r.err;
  EXPECT_FALSE(exists(host));
  EXPECT_EQ(ls().size(), 0u);
}

// crun where it can run here, else runc: on this hybrid-cgroup host crun can once the
// controllers cgroup2 held have v1 mounts (CrunReadyProcess); before that, asking for it
// by name is refused with what to mount.
TEST(RunRuntime, DefaultIsCrunWhereItCanRunElseRunc) {
  HOSTCHANFS_REQUIRE_FUSE();
  if (auto problem = mountctl::crun_cgroup_problem()) {
    auto chosen = mountctl::choose_runtime("");
    ASSERT_TRUE(chosen) << chosen.error().message;
    EXPECT_EQ(chosen.value().name, "runc");
    auto crun = mountctl::choose_runtime("crun");
    ASSERT_FALSE(crun);
    EXPECT_EQ(crun.error().kind, mountctl::Error::Kind::kBadInput);
    EXPECT_NE(crun.error().message.find("mount -t cgroup -o "), std::string::npos) << crun.error().message;
  }
  CrunReadyProcess::prepare();
  EXPECT_FALSE(mountctl::crun_cgroup_problem());
  auto chosen = mountctl::choose_runtime("");
  ASSERT_TRUE(chosen) << chosen.error().message;
  EXPECT_EQ(chosen.value().name, "crun");
  EXPECT_EQ(chosen.value().path.front(), '/');
  auto runc = mountctl::choose_runtime("runc");
  ASSERT_TRUE(runc);
  EXPECT_EQ(runc.value().name, "runc");
}

}  // namespace
}  // namespace hostchanfs::testing
