// The run dir and the registry, attacked for real: a run dir that another user made (0777,
// with controller.pid and controller.log symlinked to victim files and a forged registry
// record), symlinks in root's own run dir, a forged record naming an unrelated mount, a
// controller started by a plain user, and three controller restarts in a row that must
// leave the record and the usage right.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include "mountctl/registry.hpp"
#include "tests/mountctl/harness.hpp"
#include "tests/support/files.hpp"

namespace hostchanfs::testing {
namespace {

using RunDirTest = CheckedControllerTest;
using json = nlohmann::json;

constexpr uid_t kNobody = 65534;

bool one_line(const std::string& text) {
  return !text.empty() && text.find('\n') == text.size() - 1;
}

void write(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

// A kernel tmpfs that is nobody's channel, with a file in it.
class UnrelatedMount {
 public:
  explicit UnrelatedMount(std::string path) : path_(std::move(path)) {
    if (::mkdir(path_.c_str(), 0755) < 0 || ::mount("tmpfs", path_.c_str(), "tmpfs", 0, "size=64k") < 0) {
      throw std::runtime_error("cannot mount a tmpfs on " + path_);
    }
    write(path_ + "/precious", "precious");
  }
  ~UnrelatedMount() { ::umount2(path_.c_str(), MNT_DETACH); }
  bool intact() const { return is_mounted() && read_file(path_ + "/precious") == "precious"; }
  bool is_mounted() const {
    for (const auto& m : mounts()) {
      if (m.mount_point == path_ && m.fstype == "tmpfs") return true;
    }
    return false;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The channel the controller would make at `host`, as a record, with an owner that is gone
// (so a controller loading it removes it at once).
json forged_record(const std::string& host, pid_t gone_owner) {
  mountctl::Channel ch;
  ch.spec = mountctl::parse_spec(host + ":/x::1M").value();
  ch.owner_id = "forged";
  ch.owner_pid = gone_owner;
  struct stat st {};
  ::stat(host.c_str(), &st);
  ch.made_dirs = {{host, file_id(st)}};
  // Even the mount's own ids and device, as anyone can read them.
  struct statx unique {}, reusable {};
  ::statx(AT_FDCWD, host.c_str(), 0, 0x4000 /* STATX_MNT_ID_UNIQUE */, &unique);
  ::statx(AT_FDCWD, host.c_str(), 0, STATX_MNT_ID, &reusable);
  ch.mount = {unique.stx_mnt_id, static_cast<std::uint32_t>(reusable.stx_mnt_id), st.st_dev};
  ch.state = mountctl::ChannelState::kRunning;
  return mountctl::channel_record(ch);
}

pid_t a_gone_pid() {
  ChildProcess gone = ChildProcess::fork([] { return 0; });
  pid_t pid = gone.pid();
  gone.wait();
  return pid;
}

TEST_F(RunDirTest, ARunDirAnotherUserMadeIsRefusedAndNothingInItIsFollowed) {
  std::string evil = world_->path("evil");
  ASSERT_EQ(::mkdir(evil.c_str(), 0777), 0);
  ASSERT_EQ(::chmod(evil.c_str(), 0777), 0);
  ASSERT_EQ(::chown(evil.c_str(), kNobody, kNobody), 0);
  std::string victim = world_->path("victim");
  write(victim, "victim\n");
  for (const char* name : {"controller.pid", "controller.log"}) {
    ASSERT_EQ(::symlink(victim.c_str(), (evil + "/" + name).c_str()), 0);
  }
  UnrelatedMount other(world_->path("other"));
  ASSERT_EQ(::mkdir((evil + "/registry").c_str(), 0777), 0);
  write(evil + "/registry/" + mountctl::record_name(other.path()),
        forged_record(other.path(), a_gone_pid()).dump());

  std::string why = "run dir " + evil + " is owned by uid 65534: it must be root's own";
  std::string chan = world_->path("chan");
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--run-dir", evil, "mount", chan + ":/x::1M"},
        {"--run-dir", evil, "ls"},
        {"--run-dir", evil, "umount", other.path()},
        {"controller", "--run-dir", evil}}) {
    auto r = hostchanfs(args);
    EXPECT_EQ(r.status, 2) << ::testing::PrintToString(args) << ": " << r.err;
    EXPECT_TRUE(one_line(r.err)) << r.err;
    EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
  }
  EXPECT_EQ(read_file(victim), "victim\n") << "a symlink in the run dir was followed";
  EXPECT_TRUE(other.intact()) << "the forged record's mount was touched";
  EXPECT_FALSE(exists(chan));
  EXPECT_EQ(processes_naming(evil), std::vector<pid_t>{}) << "a controller runs for it";

  // Root's, but writable by others; a symlink to a good one; one below a directory of
  // someone else's: each refused.
  std::string shared = world_->path("shared");
  ASSERT_EQ(::mkdir(shared.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(shared.c_str(), 01777), 0);
  std::string good = world_->path("good");
  ASSERT_EQ(::mkdir(good.c_str(), 0700), 0);
  ASSERT_EQ(::symlink(good.c_str(), world_->path("link").c_str()), 0);
  std::string users = world_->path("users");
  ASSERT_EQ(::mkdir(users.c_str(), 0755), 0);
  ASSERT_EQ(::chown(users.c_str(), kNobody, kNobody), 0);
  for (auto [dir, says] : {std::pair{shared, "is writable by others (mode 1777)"},
                           std::pair{world_->path("link"), " is a symlink"},
                           std::pair{users + "/run", " is owned by uid 65534: every directory above"}}) {
    auto r = hostchanfs({"--run-dir", dir, "mount", chan + ":/x::1M"});
    EXPECT_EQ(r.status, 2) << dir << ": " << r.err;
    EXPECT_TRUE(one_line(r.err)) << r.err;
    EXPECT_NE(r.err.find(says), std::string::npos) << r.err;
  }
  EXPECT_FALSE(exists(chan));
  EXPECT_FALSE(exists(users + "/run"));
}

TEST_F(RunDirTest, SymlinksInRootsOwnRunDirAreNotFollowed) {
  std::string victim = world_->path("victim");
  write(victim, "victim\n");
  std::string run = world_->path("run2");
  ASSERT_EQ(::mkdir(run.c_str(), 0700), 0);
  std::string chan = world_->path("chan");
  for (const char* name : {"controller.log", "controller.pid"}) {
    ASSERT_EQ(::symlink(victim.c_str(), (run + "/" + name).c_str()), 0);
    auto r = hostchanfs({"--run-dir", run, "mount", chan + ":/x::1M"});
    EXPECT_NE(r.status, 0) << r.err;
    EXPECT_EQ(read_file(victim), "victim\n") << name << " was followed";
    ::unlink((run + "/" + name).c_str());
  }
  // controller.log refused by the client (exit 2, one line); controller.pid by the
  // controller it started, which then exits: nothing is made.
  EXPECT_FALSE(exists(chan));
  EXPECT_EQ(processes_naming(run), std::vector<pid_t>{});
}

TEST_F(RunDirTest, AForgedRecordNeverUnmountsAnUnrelatedMount) {
  UnrelatedMount other(world_->path("other"));
  std::string registry = world_->run_dir() + "/registry";
  ASSERT_EQ(::mkdir(world_->run_dir().c_str(), 0700), 0);
  ASSERT_EQ(::mkdir(registry.c_str(), 0700), 0);
  write(registry + "/" + mountctl::record_name(other.path()), forged_record(other.path(), a_gone_pid()).dump());
  // ls finds the record, starts a controller: it loads it, sees the owner gone, removes it.
  auto list = ls();
  EXPECT_EQ(list.size(), 0u) << list.dump();
  EXPECT_TRUE(other.intact()) << world_->controller_log();
  EXPECT_NE(world_->controller_log().find("channel " + other.path() + ": its host path stays"),
            std::string::npos) << world_->controller_log();
}

TEST_F(RunDirTest, ThreeControllerRestartsInARowKeepTheChannel) {
  std::string host = world_->path("chan");
  ASSERT_EQ(hostchanfs({"mount", host + ":/x:rw:8M"}).status, 0);
  { std::ofstream(host + "/data") << std::string(5 << 20, 'x'); }
  std::string record_path = world_->run_dir() + "/registry/" + mountctl::record_name(host);
  for (int restart = 1; restart <= 3; ++restart) {
    auto old = world_->controller_pid();
    ASSERT_TRUE(old);
    world_->kill_controller();
    auto list = ls();  // starts the next controller
    ASSERT_NE(world_->controller_pid(), old);
    ASSERT_EQ(list.size(), 1u);
    EXPECT_EQ(list[0]["state"], "running") << "restart " << restart << ": " << world_->controller_log();
    EXPECT_EQ(list[0]["bytes_used"], 5u << 20) << "restart " << restart;
    // The record holds the keeper's own descriptor numbers, and they are what they say.
    json record = json::parse(read_file(record_path));
    pid_t keeper = record["holder"]["pid"];
    EXPECT_EQ(keeper, list[0]["keeper_pid"].get<pid_t>());
    auto link = [](pid_t pid, int fd) {
      return std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd)).string();
    };
    EXPECT_EQ(link(keeper, record["holder"]["fuse"]), "/dev/fuse") << "restart " << restart;
    EXPECT_EQ(link(keeper, record["holder"]["meta"]), "/memfd:hostchanfs-meta (deleted)");
    EXPECT_EQ(link(keeper, record["holder"]["data"]), "/memfd:hostchanfs-data (deleted)");
    EXPECT_EQ(link(keeper, record["holder"]["session"]), "/memfd:hostchanfs-session (deleted)");
    bool holds_fuse = false;
    std::error_code ec;
    std::string fds = "/proc/" + std::to_string(*world_->controller_pid()) + "/fd";
    for (const auto& e : std::filesystem::directory_iterator(fds, ec)) {
      holds_fuse = holds_fuse || std::filesystem::read_symlink(e.path(), ec) == "/dev/fuse";
    }
    EXPECT_TRUE(holds_fuse) << "restart " << restart << ": the controller lost the /dev/fuse descriptor";
  }
  EXPECT_EQ(read_file(host + "/data").size(), 5u << 20);
  EXPECT_EQ(hostchanfs({"umount", host}).status, 0);
  EXPECT_FALSE(exists(host));
}

// --charge writer: a replacement controller takes the backing tmpfs back from the daemon
// too (checked to be a tmpfs root): its usage is what `ls` reports, which the store's
// header (0 data pages in this mode) could not say.
TEST_F(RunDirTest, ARestartedControllerAdoptsTheBackingTmpfs) {
  std::string host = world_->path("chan");
  ASSERT_EQ(hostchanfs({"mount", "--charge", "writer", host + ":/x:rw:8M"}).status, 0);
  { std::ofstream(host + "/data") << std::string(5 << 20, 'x'); }
  for (int restart = 1; restart <= 2; ++restart) {
    world_->kill_controller();
    auto list = ls();  // starts the next controller
    ASSERT_EQ(list.size(), 1u);
    EXPECT_EQ(list[0]["state"], "running") << "restart " << restart << ": " << world_->controller_log();
    EXPECT_EQ(list[0]["charge"], "writer");
    EXPECT_EQ(list[0]["bytes_used"], 5u << 20) << "restart " << restart << ": " << world_->controller_log();
  }
  EXPECT_EQ(read_file(host + "/data").size(), 5u << 20);
  EXPECT_EQ(hostchanfs({"umount", host}).status, 0);
  EXPECT_FALSE(exists(host));
}

TEST_F(RunDirTest, AControllerStartedByAPlainUserExitsAtOnce) {
  int err = ::memfd_create("err", MFD_CLOEXEC);
  ChildProcess controller = ChildProcess::fork([&] {
    if (::dup2(err, 2) < 0 || ::setresgid(kNobody, kNobody, kNobody) < 0 ||
        ::setresuid(kNobody, kNobody, kNobody) < 0) {
      return 100;
    }
    ::execl(HOSTCHANFS_BIN, "hostchanfs", "controller", "--run-dir", "/tmp/hostchanfs-plain-user", nullptr);
    return 101;
  });
  auto status = controller.wait_for(std::chrono::seconds(30));  // the bound turns a hang into a failure
  ASSERT_TRUE(status) << "a plain user's controller keeps running";
  EXPECT_EQ(*status, 2);
  std::string text = read_all(err);
  ::close(err);
  EXPECT_EQ(text, "hostchanfs controller: the controller must run as root (it mounts channels and makes "
                  "their host paths): run it as root\n");
  EXPECT_FALSE(exists("/tmp/hostchanfs-plain-user"));
}

}  // namespace
}  // namespace hostchanfs::testing
