// The controller and its commands on real mounts: mount, ls, umount, exit codes, failed
// daemons, owners, teardown; and expose_into on its own with a kernel tmpfs as source.
// Each test has its own mount namespace, run dir and controller (harness.hpp).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "mountctl/client.hpp"
#include "mountctl/expose.hpp"
#include "mountctl/spec.hpp"
#include "tests/mountctl/harness.hpp"
#include "tests/support/files.hpp"
#include "tests/support/fuse_required.hpp"

namespace hostchanfs::mountctl {
namespace {

using testing::ChildProcess;
using testing::ControllerWorld;
using testing::eventually;
using testing::exists;
using testing::hostchanfs;
using testing::is_fuse_mount;
using testing::mounts_under;
using testing::processes_naming;
using json = nlohmann::json;

using ControllerTest = testing::CheckedControllerTest;

bool fsys_empty(const std::string& dir) {
  std::error_code ec;
  return std::filesystem::is_empty(dir, ec) || ec;
}

// --charge writer: the channel's data lives in its private backing tmpfs, which `ls`
// reads (the store's header would show only its own pages), and `ls` names the mode.
TEST_F(ControllerTest, WriterChargedChannelIsListedWithItsBackingUsage) {
  std::string host = world_->path("chan");
  auto r = hostchanfs({"mount", "--charge", "writer", host + ":/data:rw:1M"});
  ASSERT_EQ(r.status, 0) << r.err;
  { std::ofstream(host + "/f") << std::string(10000, 'x'); }
  ASSERT_EQ(::symlink(std::string(200, 't').c_str(), (host + "/long").c_str()), 0);
  json list = ls();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["charge"], "writer");
  EXPECT_EQ(list[0]["bytes_used"], 4 * 4096u);  // three pages of data, one long symlink
  EXPECT_EQ(list[0]["inodes_used"], 3u);
  auto table = hostchanfs({"ls"});
  EXPECT_NE(table.out.find(" writer "), std::string::npos) << table.out;
  EXPECT_EQ(hostchanfs({"umount", host}).status, 0);
  EXPECT_EQ(ls().size(), 0u);

  r = hostchanfs({"mount", "--charge", "nobody", host + ":/data:rw:1M"});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_FALSE(std::filesystem::exists(host));
}

// A channel costs the controller a dozen descriptors (the connection and a clone per
// daemon worker, the memory, pidfds): it runs with the hard descriptor limit, not the
// soft 1024 that would stop it at about 80 channels.
TEST_F(ControllerTest, TheControllerTakesTheHardDescriptorLimit) {
  // The controller this mount starts inherits a soft limit below the hard one.
  rlimit ours{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &ours), 0);
  ASSERT_GT(ours.rlim_max, 1024u);
  rlimit lowered{1024, ours.rlim_max};
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);
  std::string host = world_->path("chan");
  auto mounted = hostchanfs({"mount", host + ":/data:rw:1M"});
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &ours), 0);
  ASSERT_EQ(mounted.status, 0) << mounted.err;
  auto pid = world_->controller_pid();
  ASSERT_TRUE(pid);
  std::ifstream limits("/proc/" + std::to_string(*pid) + "/limits");
  std::string line, soft, hard;
  while (std::getline(limits, line)) {
    if (line.rfind("Max open files", 0) != 0) continue;
    std::istringstream fields(line.substr(std::string("Max open files").size()));
    fields >> soft >> hard;
  }
  ASSERT_FALSE(hard.empty());
  EXPECT_EQ(soft, hard);
  EXPECT_EQ(hostchanfs({"umount", host}).status, 0);
}

TEST_F(ControllerTest, MountListUmountLifecycle) {
  std::string host = world_->path("a/b/chan");
  auto r = hostchanfs({"mount", host + ":/data:ro:1M"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "--mount type=bind,src=" + host + ",dst=/data,ro=true\n"
                   "{\"destination\":\"/data\",\"options\":[\"rbind\",\"rprivate\",\"nosuid\","
                   "\"nodev\",\"noexec\",\"ro\"],\"source\":\"" + host + "\",\"type\":\"bind\"}\n");
  ASSERT_TRUE(is_fuse_mount(host));
  struct stat st {};
  ASSERT_EQ(::stat(host.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 01777u);
  // The controller mounts, its daemon answers INIT later: the readahead survives both.
  EXPECT_EQ(testing::read_ahead_kb(host), "1024");

  { std::ofstream(host + "/f") << std::string(10000, 'x'); }
  json list = ls();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["host_path"], host);
  EXPECT_EQ(list[0]["container_path"], "/data");
  EXPECT_EQ(list[0]["read_only"], true);
  EXPECT_EQ(list[0]["size_bytes"], 1u << 20);
  EXPECT_EQ(list[0]["bytes_used"], 3 * 4096u);  // 10000 bytes: three pages, as tmpfs
  EXPECT_EQ(list[0]["inodes_used"], 2u);        // the root and f
  EXPECT_EQ(list[0]["state"], "running");
  EXPECT_GT(list[0]["daemon_pid"].get<int>(), 0);

  auto table = hostchanfs({"ls"});
  EXPECT_EQ(table.status, 0);
  EXPECT_NE(table.out.find(host), std::string::npos);
  EXPECT_NE(table.out.find("running"), std::string::npos);

  r = hostchanfs({"umount", host});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(exists(host));
  EXPECT_FALSE(exists(world_->path("a"))) << "the parents the channel made go with it";
  EXPECT_EQ(ls().size(), 0u);
}

TEST_F(ControllerTest, BadInputExitsTwoAndChangesNothing) {
  std::string host = world_->path("x/chan");
  auto r = hostchanfs({"mount", host + ":/data:rx:1M"});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "hostchanfs: mode \"rx\" is neither rw nor ro: give rw, ro, or leave it empty for rw\n");
  EXPECT_FALSE(exists(world_->path("x")));
  EXPECT_FALSE(world_->controller_pid()) << "bad input starts no controller";

  r = hostchanfs({"mount", "relative:/data::"});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "hostchanfs: host path \"relative\" is not an absolute path: give a path that starts with /\n");

  std::string existing = world_->path("existing");
  ASSERT_EQ(::mkdir(existing.c_str(), 0700), 0);
  r = hostchanfs({"mount", existing + ":/data::"});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "hostchanfs: host path \"" + existing +
                       "\" already exists (a directory): give a path that does not exist yet, "
                       "the channel makes it and removes it\n");
  struct stat st {};
  ASSERT_EQ(::stat(existing.c_str(), &st), 0) << "an existing directory is left as it was";
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_FALSE(is_fuse_mount(existing));
  ::rmdir(existing.c_str());

  std::string link = world_->path("link");
  ASSERT_EQ(::symlink("/nonexistent", link.c_str()), 0);
  r = hostchanfs({"mount", link + ":/data::"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("already exists (a symlink)"), std::string::npos) << r.err;
  ::unlink(link.c_str());

  r = hostchanfs({"umount", world_->path("nothing")});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "hostchanfs: no channel at " + world_->path("nothing") + "\n");

  r = hostchanfs({"mount"});
  EXPECT_EQ(r.status, 2) << "a missing argument is bad input";
  EXPECT_EQ(ls().size(), 0u);
}

TEST_F(ControllerTest, EveryUsageErrorExitsTwoInOneLine) {
  std::string host = world_->path("u");
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"serve", "--inodes", "-1", "--size", "1M", host},
        {"serve", "--uid", "-1", "--size", "1M", host},
        {"mount", host + ":/x::1M", "--inodes", "-1"},
        {"mount", host + ":/x::1M", "--gid", "x"},
        {"mount", host + "\n:/x::1M"},
        {"umount", "relative"},
        {"umount", host + "\xff"},
        {"no-such-command"},
        {"ls", "--no-such-flag"},
        {"controller", "--run-dir", "relative"}}) {
    auto r = hostchanfs(args);
    EXPECT_EQ(r.status, 2) << ::testing::PrintToString(args) << ": " << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
    EXPECT_EQ(r.err.rfind("hostchanfs", 0), 0u) << r.err;
  }
  EXPECT_FALSE(exists(host));
  EXPECT_FALSE(world_->controller_pid()) << "no usage error starts a controller";
}

TEST_F(ControllerTest, EveryCommandHasHelp) {
  for (const char* cmd : {"mount", "umount", "ls", "run"}) {
    auto r = hostchanfs({cmd, "--help"});
    EXPECT_EQ(r.status, 0) << cmd;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << cmd << ": " << r.out;
  }
}

TEST_F(ControllerTest, SecondMountOfTheSameHostPathIsRefused) {
  std::string host = world_->path("chan");
  ASSERT_EQ(hostchanfs({"mount", host + ":/a::1M"}).status, 0);
  auto r = hostchanfs({"mount", host + ":/b::1M"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("is already a channel"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line";
  EXPECT_EQ(hostchanfs({"umount", host}).status, 0);
}

TEST_F(ControllerTest, AKilledDaemonIsRestartedOnTheSameConnectionAndUmountStillCleansUp) {
  std::string host = world_->path("chan");
  ASSERT_EQ(hostchanfs({"mount", host + ":/data::1M"}).status, 0);
  { std::ofstream(host + "/f") << "kept"; }
  json before = ls()[0];
  pid_t daemon = before["daemon_pid"].get<pid_t>();
  ASSERT_GT(daemon, 0);
  EXPECT_EQ(before["restarts"], 0u);
  EXPECT_GT(before["keeper_pid"].get<pid_t>(), 0);
  ASSERT_EQ(::kill(daemon, SIGKILL), 0);
  EXPECT_TRUE(eventually([&] { return ls()[0]["restarts"] == 1u; }));
  json after = ls()[0];
  EXPECT_EQ(after["state"], "running");
  EXPECT_NE(after["daemon_pid"].get<pid_t>(), daemon);
  EXPECT_EQ(after["keeper_pid"], before["keeper_pid"]);
  EXPECT_EQ(testing::read_file(host + "/f"), "kept");
  EXPECT_NE(world_->controller_log().find("killed by signal 9"), std::string::npos);
  auto r = hostchanfs({"umount", host});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(exists(host));
  EXPECT_EQ(ls().size(), 0u);
}

TEST_F(ControllerTest, OwnerDeathRemovesItsChannel) {
  ChildProcess owner = ChildProcess::fork([] {
    ::pause();
    return 0;
  });
  std::string host = world_->path("owned");
  {
    auto client = ControllerClient::connect(world_->run_dir());
    ASSERT_TRUE(client) << client.error().message;
    auto spec = parse_spec(host + ":/data::1M");
    ASSERT_TRUE(spec);
    auto created = client.value().create(spec.value(), {}, Owner{"test-owner", owner.pid()});
    ASSERT_TRUE(created) << created.error().message;
    EXPECT_FALSE(created.value().existed);
    // The same owner asking again gets the same channel (what an OCI hook relies on).
    auto again = client.value().create(spec.value(), {}, Owner{"test-owner", owner.pid()});
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_TRUE(again.value().existed);
    auto other = client.value().create(spec.value(), {}, Owner{"someone-else", std::nullopt});
    ASSERT_FALSE(other);
    EXPECT_EQ(other.error().kind, Error::Kind::kBadInput);
  }
  ASSERT_TRUE(is_fuse_mount(host));
  owner.signal(SIGKILL);
  owner.wait();
  EXPECT_TRUE(eventually([&] { return !exists(host); }));
  EXPECT_EQ(ls().size(), 0u);
}

TEST_F(ControllerTest, RemoveOfAMissingChannelIsNotFound) {
  auto client = ControllerClient::connect(world_->run_dir());
  ASSERT_TRUE(client) << client.error().message;
  auto removed = client.value().remove(world_->path("never"));
  ASSERT_FALSE(removed);
  EXPECT_EQ(removed.error().kind, Error::Kind::kNotFound);
}

TEST_F(ControllerTest, SigtermRemovesEveryChannel) {
  ASSERT_EQ(hostchanfs({"mount", world_->path("one") + ":/one::1M"}).status, 0);
  ASSERT_EQ(hostchanfs({"mount", world_->path("two") + ":/two:ro:1M"}).status, 0);
  ASSERT_EQ(ls().size(), 2u);
  EXPECT_TRUE(world_->stop_controller());
  EXPECT_FALSE(exists(world_->path("one")));
  EXPECT_FALSE(exists(world_->path("two")));
  EXPECT_FALSE(exists(world_->run_dir() + "/controller.sock"));
}

TEST_F(ControllerTest, AKilledControllerIsReplacedAndTakesItsChannelsOver) {
  std::string host = world_->path("chan");
  ASSERT_EQ(hostchanfs({"mount", host + ":/data::1M"}).status, 0);
  { std::ofstream(host + "/f") << "kept"; }
  auto first = world_->controller_pid();
  ASSERT_TRUE(first);
  world_->kill_controller();
  // ls finds the registry, starts a new controller, which adopts the live daemon.
  json list = ls();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["state"], "running");
  EXPECT_NE(world_->controller_pid(), first);
  std::ifstream in(host + "/f");
  std::string got;
  in >> got;
  EXPECT_EQ(got, "kept");
  EXPECT_EQ(hostchanfs({"umount", host}).status, 0);
  EXPECT_FALSE(exists(host));
}

// Members (the OCI hook's containers): the channel goes with the last one. A member with a
// bundle (a podman container) stays through its poststop and leaves when the bundle
// directory goes; another spec for the same owner is refused in one line.
TEST_F(ControllerTest, MembersShareAChannelAndABundleLeavesWhenItGoes) {
  std::string host = world_->path("chan"), bundle = world_->path("bundle");
  std::filesystem::create_directories(bundle);
  auto client = ControllerClient::connect(world_->run_dir());
  ASSERT_TRUE(client) << client.error().message;
  auto spec = parse_spec(host + ":/c:rw:64k");
  ASSERT_TRUE(spec);
  auto first = client.value().join(spec.value(), {}, "pod:ab", Member{"oci:c1", bundle});
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_FALSE(first.value().existed);
  auto second = client.value().join(spec.value(), {}, "pod:ab", Member{"oci:c2", ""});
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_TRUE(second.value().existed);
  EXPECT_EQ(second.value().channel.members.size(), 2u);

  auto other = parse_spec(host + ":/c:ro:64k");
  auto refused = client.value().join(other.value(), {}, "pod:ab", Member{"oci:c3", ""});
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("give every container of one pod the same channel spec"),
            std::string::npos) << refused.error().message;

  EXPECT_EQ(client.value().leave(host, "pod:other", "oci:c2").value(), LeaveOutcome::kNotOurs);
  EXPECT_EQ(client.value().leave(host, "pod:ab", "oci:c1").value(), LeaveOutcome::kKept);
  EXPECT_EQ(client.value().leave(host, "pod:ab", "oci:c2").value(), LeaveOutcome::kLeft);
  EXPECT_TRUE(is_fuse_mount(host));
  std::filesystem::remove_all(bundle);
  EXPECT_TRUE(eventually([&] { return !exists(host); })) << world_->controller_log();
  EXPECT_EQ(ls().size(), 0u);
}

// A bundle that went while no controller ran: the next controller finds the member gone
// when it loads the registry, and removes the channel.
TEST_F(ControllerTest, ABundleThatWentWhileNoControllerRanIsSeenAtStart) {
  std::string host = world_->path("chan"), bundle = world_->path("bundle");
  std::filesystem::create_directories(bundle);
  {
    auto client = ControllerClient::connect(world_->run_dir());
    ASSERT_TRUE(client) << client.error().message;
    auto joined = client.value().join(parse_spec(host + ":/c:rw:64k").value(), {}, "oci:c1",
                                      Member{"oci:c1", bundle});
    ASSERT_TRUE(joined) << joined.error().message;
  }
  world_->kill_controller();
  std::filesystem::remove_all(bundle);
  EXPECT_EQ(ls().size(), 0u) << world_->controller_log();  // a new controller, from the registry
  EXPECT_FALSE(exists(host));
}

TEST_F(ControllerTest, AStartThatFailsHalfwayLeavesNothing) {
  // The daemon refuses an inode limit it cannot hold: by then the parents, the host path
  // and the mount exist, and all of them must go.
  std::string host = world_->path("p/q/chan");
  auto r = hostchanfs({"mount", host + ":/data::1M", "--inodes", "99999999999999999"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("exited before it was ready"), std::string::npos) << r.err;
  EXPECT_FALSE(exists(world_->path("p")));
  EXPECT_EQ(mounts_under(world_->work()), std::vector<std::string>{});
  EXPECT_EQ(ls().size(), 0u);
  EXPECT_TRUE(fsys_empty(world_->run_dir() + "/registry")) << "no registry entry";
}

TEST_F(ControllerTest, UidAndGidOwnTheChannelRoot) {
  std::string host = world_->path("u");
  ASSERT_EQ(hostchanfs({"mount", host + ":/data::1M", "--uid", "1000", "--gid", "1001"}).status, 0);
  struct stat st {};
  ASSERT_EQ(::stat(host.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_gid, 1001u);
  EXPECT_EQ(st.st_mode & 07777, 01777u);
  EXPECT_EQ(ls()[0]["uid"], 1000u);
  EXPECT_EQ(hostchanfs({"umount", host}).status, 0);
}

TEST_F(ControllerTest, BusyChannelIsDetachedLazilyAndItsOpenFilesKeepWorking) {
  std::string host = world_->path("busy");
  ASSERT_EQ(hostchanfs({"mount", host + ":/data::1M"}).status, 0);
  { std::ofstream(host + "/f") << "still here"; }
  int fd = ::open((host + "/f").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto r = hostchanfs({"umount", host});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(exists(host));
  EXPECT_EQ(ls().size(), 0u);
  char buf[32] = {};
  EXPECT_EQ(::pread(fd, buf, sizeof buf, 0), 10) << "as with tmpfs, an open file outlives a lazy unmount";
  EXPECT_EQ(std::string(buf), "still here");
  ::close(fd);
  // The last user gone, the kernel ends the connection and the daemon exits.
  EXPECT_TRUE(eventually([&] { return processes_naming(host).empty(); }));
}

TEST_F(ControllerTest, OneControllerPerRunDir) {
  ASSERT_EQ(hostchanfs({"mount", world_->path("one") + ":/one::1M"}).status, 0);
  auto first = world_->controller_pid();
  ASSERT_TRUE(first);
  // A second controller for the same run dir sees the lock and leaves.
  auto r = hostchanfs({"controller", "--run-dir", world_->run_dir()});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(world_->controller_pid(), first);
  EXPECT_EQ(ls().size(), 1u);
  EXPECT_EQ(hostchanfs({"umount", world_->path("one")}).status, 0);
}

// expose_into alone, with a kernel tmpfs as the source: a child in its own mount
// namespace has a root directory; the tmpfs is bound at a container path inside it.
class ExposeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HOSTCHANFS_REQUIRE(::geteuid() == 0, "needs root");
    ns_.emplace();
    source_.emplace(1 << 20);
    int ready[2], go[2];
    ASSERT_EQ(::pipe(ready), 0);
    ASSERT_EQ(::pipe(go), 0);
    // The "container": its own mount namespace, waiting until the test is done.
    container_ = ChildProcess::fork([ready, go] {
      ::close(ready[0]);
      ::close(go[1]);  // so that the test closing its end ends the read below
      if (::unshare(CLONE_NEWNS) < 0) return 1;
      if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) return 1;
      char c = 'r';
      if (::write(ready[1], &c, 1) != 1) return 1;
      return ::read(go[0], &c, 1) >= 0 ? 0 : 1;
    });
    ::close(ready[1]);
    ::close(go[0]);
    go_ = go[1];
    char c;
    ASSERT_EQ(::read(ready[0], &c, 1), 1);
    ::close(ready[0]);
  }
  void TearDown() override {
    if (go_ >= 0) ::close(go_);
    container_.wait();
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(rootfs_.path(), ec)) std::filesystem::remove_all(e.path(), ec);
    for (const auto& e : std::filesystem::directory_iterator(decoy_.path(), ec)) std::filesystem::remove_all(e.path(), ec);
  }
  // expose_into with the tmpfs as the channel, opened by descriptor as the controller does.
  Expected<void> expose(pid_t pid, const std::string& container_path, bool read_only) {
    UniqueFd mount(::open(source_->path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    return expose_into(mount.get(), source_->path(), pid, rootfs_.path(), container_path, read_only);
  }
  // Runs `body` inside the container's mount namespace, returns its status.
  int in_container(const std::function<int()>& body) {
    pid_t target = container_.pid();
    return ChildProcess::fork([target, body] {
             int ns = ::open(("/proc/" + std::to_string(target) + "/ns/mnt").c_str(), O_RDONLY);
             // Its own root and cwd first: a TSan build's child has a second thread.
             if (ns < 0 || ::unshare(CLONE_FS) < 0 || ::setns(ns, CLONE_NEWNS) < 0) return 100;
             return body();
           }).wait();
  }

  std::optional<testing::PrivateMountNamespace> ns_;
  std::optional<testing::ScopedTmpfs> source_;
  testing::TempDir rootfs_{"rootfs"};
  testing::TempDir decoy_{"decoy"};
  ChildProcess container_;
  int go_ = -1;
};

TEST_F(ExposeTest, ReadWriteBindIsSharedWithTheHost) {
  auto done = expose(container_.pid(), "/data/chan", false);
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_FALSE(exists(rootfs_.path() + "/data/chan/x")) << "not in our namespace";
  std::string inside = rootfs_.path() + "/data/chan";
  EXPECT_EQ(in_container([inside] { return std::ofstream(inside + "/x") << "hi" ? 0 : 1; }), 0);
  std::ifstream in(source_->path() + "/x");
  std::string got;
  in >> got;
  EXPECT_EQ(got, "hi");
  // nosuid, nodev, noexec always.
  EXPECT_EQ(in_container([inside] {
              struct statvfs sv {};
              if (::statvfs(inside.c_str(), &sv) < 0) return 1;
              unsigned long want = ST_NOSUID | ST_NODEV | ST_NOEXEC;
              return (sv.f_flag & want) == want && !(sv.f_flag & ST_RDONLY) ? 0 : 2;
            }),
            0);
}

TEST_F(ExposeTest, ReadOnlyBindRefusesWritesInside) {
  auto done = expose(container_.pid(), "/ro", true);
  ASSERT_TRUE(done) << done.error().message;
  std::string inside = rootfs_.path() + "/ro";
  EXPECT_EQ(in_container([inside] {
              int fd = ::open((inside + "/x").c_str(), O_CREAT | O_WRONLY, 0644);
              return fd < 0 && errno == EROFS ? 0 : 1;
            }),
            0);
  { std::ofstream(source_->path() + "/host-file") << "host"; }
  EXPECT_EQ(in_container([inside] { return exists(inside + "/host-file") ? 0 : 1; }), 0);
}

TEST_F(ExposeTest, SymlinkOutOfTheRootfsLandsInside) {
  std::string link = rootfs_.path() + "/link";
  ASSERT_EQ(::symlink(decoy_.path().c_str(), link.c_str()), 0);
  auto done = expose(container_.pid(), "/link/chan", false);
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_FALSE(exists(decoy_.path() + "/chan")) << "the decoy outside the rootfs is untouched";
  std::string landed = rootfs_.path() + decoy_.path() + "/chan";
  { std::ofstream(source_->path() + "/marker") << "m"; }
  EXPECT_EQ(in_container([landed] { return exists(landed + "/marker") ? 0 : 1; }), 0);
}

TEST_F(ExposeTest, GoneProcessIsBadInput) {
  ChildProcess gone = ChildProcess::fork([] { return 0; });
  pid_t pid = gone.pid();
  gone.wait();
  auto done = expose(pid, "/x", false);
  ASSERT_FALSE(done);
  EXPECT_EQ(done.error().kind, Error::Kind::kBadInput);
  EXPECT_EQ(done.error().message,
            "process " + std::to_string(pid) + " does not exist (has the container exited?)");
}

}  // namespace
}  // namespace hostchanfs::mountctl
