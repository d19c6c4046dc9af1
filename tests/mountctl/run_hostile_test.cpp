// The hostile container: every attack of issue 13, performed for real inside `hostchanfs
// run`'s default container (the host's root) and with --rootfs (a busybox tree), on runc
// and on crun. hostile_probe.cpp does the attacks from inside and says, line by line, what
// was blocked; the test sets the bait on the host first: the host's block devices as
// nodes planted where the container can see them, an abstract and path Unix sockets, a
// root-only file, another channel with files in it. Then `unshare -Ur`, a read-only
// channel that must stay so, and a container path that a symlink turns into the root.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "mountctl/run_bundle.hpp"
#include "sys/scope_guard.hpp"
#include "sys/unique_fd.hpp"
#include "sys/unix_socket.hpp"
#include "tests/mountctl/run_harness.hpp"

namespace hostchanfs::testing {
namespace {

namespace fsys = std::filesystem;

struct BlockDevice {
  std::string name, dev;  // "vda", "254:0"
};

std::vector<BlockDevice> host_block_devices() {
  std::vector<BlockDevice> out;
  for (const auto& entry : fsys::directory_iterator("/sys/class/block")) {
    std::string dev = read_file(entry.path().string() + "/dev");
    dev.erase(dev.find_last_not_of('\n') + 1);
    out.push_back({entry.path().filename().string(), dev});
  }
  return out;
}

// A listening Unix socket: at `path`, or abstract when `path` starts with '@'.
UniqueFd listen_on(const std::string& path, mode_t mode) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  bool abstract = path.front() == '@';
  std::memcpy(addr.sun_path + (abstract ? 1 : 0), path.data() + (abstract ? 1 : 0), path.size() - (abstract ? 1 : 0));
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) < 0 || ::listen(fd.get(), 4) < 0) {
    throw std::runtime_error("listen on " + path + ": " + errno_text(errno));
  }
  if (!abstract) ::chmod(path.c_str(), mode);
  return fd;
}

class HostileTest : public RunFixture {
 protected:
  void SetUp() override {
    RunFixture::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    // Bait in a directory of the host's root file system, which the default container
    // sees; reachable only by root and by the ids container root maps to.
    bait_.emplace("hostchanfs-hostile", "/var/tmp");
    ASSERT_EQ(::chown(bait_->path().c_str(), mountctl::kUserNsHostId, mountctl::kUserNsHostId), 0);
    ASSERT_EQ(::chmod(bait_->path().c_str(), 0700), 0);
    probe_ = bait_->path() + "/hostile_probe";
    fsys::copy_file(HOSTILE_PROBE, probe_);
    plant_devices(bait_->path());
    secret_ = bait_->path() + "/secret";
    { std::ofstream(secret_) << "root's own\n"; }
    ASSERT_EQ(::chmod(secret_.c_str(), 0600), 0);
    // Sockets: abstract, under /tmp (0777), under /run (0777), root-only on the root file
    // system, and the controller's own.
    run_bait_.emplace("hostchanfs-hostile", "/run");
    abstract_ = "hostchanfs-hostile-" + std::to_string(::getpid());
    for (const auto& [path, mode] : std::vector<std::pair<std::string, mode_t>>{
             {"@" + abstract_, 0}, {world_->path("host.sock"), 0777}, {run_bait_->path() + "/host.sock", 0777},
             {bait_->path() + "/root.sock", 0755}}) {
      listeners_.push_back(listen_on(path, mode));
      if (path.front() != '@') sockets_.push_back(path);
    }
    sockets_.push_back(world_->run_dir() + "/controller.sock");
    // Another channel, with a file anyone may read and one only root may.
    other_ = bait_->path() + "/other";
    auto made = hostchanfs({"mount", other_ + ":/other:rw:1M"});
    ASSERT_EQ(made.status, 0) << made.err;
    { std::ofstream(other_ + "/public") << "anyone\n"; }
    { std::ofstream(other_ + "/private") << "root\n"; }
    ASSERT_EQ(::chmod((other_ + "/public").c_str(), 0644), 0);
    ASSERT_EQ(::chmod((other_ + "/private").c_str(), 0600), 0);
  }
  void TearDown() override {
    if (world_ && !other_.empty()) {
      auto removed = hostchanfs({"umount", other_});
      EXPECT_EQ(removed.status, 0) << removed.err;
    }
    listeners_.clear();
    RunFixture::TearDown();
  }

  // A device node for every host block device, readable and writable by anyone, in `dir`.
  void plant_devices(const std::string& dir) {
    for (const auto& dev : host_block_devices()) {
      unsigned major = 0, minor = 0;
      std::sscanf(dev.dev.c_str(), "%u:%u", &major, &minor);
      std::string node = dir + "/planted-" + dev.name;
      ASSERT_EQ(::mknod(node.c_str(), S_IFBLK | 0666, makedev(major, minor)), 0) << node;
      ASSERT_EQ(::chmod(node.c_str(), 0666), 0);
      planted_.push_back(node);
    }
  }

  // The probe's arguments for a container whose root is the host's (paths as the host
  // sees them) or a rootfs (`planted_in_root`: where the planted nodes are in it).
  std::vector<std::string> probe_args(const std::string& mode) const {
    std::vector<std::string> args = {"chan=/chan", "mode=" + mode, "abstract=" + abstract_,
                                     "secret=" + secret_, "secret=/etc/shadow",
                                     "other=" + other_ + "/public", "other=" + other_ + "/private"};
    for (const auto& dev : host_block_devices()) {
      args.push_back("block=" + dev.dev);
      args.push_back("hostdev=/dev/" + dev.name);
    }
    for (const auto& node : planted_) args.push_back("planted=" + node);
    for (const auto& s : sockets_) args.push_back("socket=" + s);
    return args;
  }

  // Runs the probe in the container and checks that it blocked everything (but the
  // `escapes` expected), and really tried what matters most (a probe that tried nothing
  // would pass).
  void expect_everything_blocked(const std::vector<std::string>& run_options, const std::string& probe,
                                 const std::string& mode, const std::vector<std::string>& escapes = {}) {
    std::string host = world_->path("chan");
    std::vector<std::string> args = run_options;
    args.insert(args.end(), {"--host-channel", host + ":/chan:" + mode + ":1M", "--", probe});
    auto probe_args_ = probe_args(mode);
    args.insert(args.end(), probe_args_.begin(), probe_args_.end());
    auto r = run(args);
    EXPECT_EQ(r.status, escapes.empty() ? 0 : 1) << r.out << r.err;
    std::vector<std::string> escaped;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("ESCAPED: ", 0) == 0) escaped.push_back(line.substr(9));
    }
    EXPECT_EQ(escaped, escapes) << r.out;
    EXPECT_EQ(r.out.find("UNTESTED"), std::string::npos) << r.out;
    for (const char* line :
         {"blocked: CapInh=", "blocked: CapPrm=", "blocked: CapEff=", "blocked: CapBnd=", "blocked: CapAmb=",
          "blocked: NoNewPrivs: 1", "blocked: Seccomp: 2", "blocked: mknod /tmp/hostile-node b ",
          "blocked: mknod /dev/hostile-node b ", "blocked: open for writing /proc/sys/kernel/core_pattern",
          "blocked: open for writing /proc/sysrq-trigger", "blocked: connect to the host's abstract socket",
          "blocked: read another channel's file",
          "blocked: create /hostile-probe", "blocked: remount / read-write", "blocked: remount the channel read-write",
          "blocked: unshare a user namespace", "blocked: clone a user namespace", "blocked: read /proc/kcore",
          "network interfaces: loopback only"}) {
      EXPECT_NE(r.out.find(line), std::string::npos) << "missing: " << line << "\n" << r.out;
    }
    if (escapes.empty()) {
      EXPECT_NE(r.out.find("blocked: read the root-only host file"), std::string::npos) << r.out;
    }
    for (const auto& node : planted_) {
      std::string seen = node.substr(node.find("/planted-"));
      EXPECT_NE(r.out.find("blocked: open "), std::string::npos);
      EXPECT_NE(r.out.find(seen + ": "), std::string::npos) << "the planted " << node << " was not tried\n" << r.out;
    }
    std::smatch counts;
    ASSERT_TRUE(std::regex_search(r.out, counts, std::regex("/proc/sys files (\\d+), /sys files (\\d+)"))) << r.out;
    EXPECT_GT(std::stoi(counts[1]), 100) << "the probe tried every file of /proc/sys";
    EXPECT_GT(std::stoi(counts[2]), 1000) << "and of /sys";
    std::string own = mode == "rw" ? "works: write the own channel"
                                   : "blocked: write the read-only channel: Read-only file system";
    EXPECT_NE(r.out.find(own), std::string::npos) << r.out;
  }

  // A busybox rootfs with the probe and the planted nodes in it.
  std::string make_rootfs() {
    std::string rootfs = world_->path("rootfs");
    oci::make_busybox_rootfs(rootfs);
    fsys::copy_file(HOSTILE_PROBE, rootfs + "/probe");
    fsys::create_directories(rootfs + "/var/tmp");
    planted_.clear();
    plant_devices(rootfs + "/var/tmp");
    for (auto& node : planted_) node = node.substr(rootfs.size());  // as the container sees it
    return rootfs;
  }

  std::optional<TempDir> bait_, run_bait_;
  std::string probe_, secret_, abstract_, other_;
  std::vector<std::string> planted_, sockets_;
  std::vector<UniqueFd> listeners_;
};
HOSTCHANFS_RUN_ON_EVERY_RUNTIME(HostileTest);

TEST_P(HostileTest, DefaultContainerBlocksEveryAttack) { expect_everything_blocked({}, probe_, "rw"); }

TEST_P(HostileTest, DefaultContainerKeepsAReadOnlyChannelReadOnly) { expect_everything_blocked({}, probe_, "ro"); }

TEST_P(HostileTest, RootfsContainerBlocksEveryAttack) {
  std::string rootfs = make_rootfs();
  expect_everything_blocked({"--rootfs", rootfs}, "/probe", "rw");
}

TEST_P(HostileTest, RootfsContainerKeepsAReadOnlyChannelReadOnly) {
  std::string rootfs = make_rootfs();
  expect_everything_blocked({"--rootfs", rootfs}, "/probe", "ro");
}

// The opt-out: without a user namespace, container root is host root for files, and reads
// what root owns; everything else stays blocked.
TEST_P(HostileTest, WithoutUserNamespaceOnlyRootsOwnFilesAreReadable) {
  ASSERT_EQ(::chown(bait_->path().c_str(), 0, 0), 0);  // container root is uid 0 now
  expect_everything_blocked({"--userns", "host"}, probe_, "rw",
                            {"read the root-only host file " + secret_, "read the root-only host file /etc/shadow"});
}

// `unshare -Ur` (a user namespace, root in it): refused, with the host's util-linux and
// with busybox's applet.
TEST_P(HostileTest, UnshareUserNamespaceFails) {
  std::string host = world_->path("chan");
  std::string rootfs = make_rootfs();
  for (const auto& options : {std::vector<std::string>{}, std::vector<std::string>{"--rootfs", rootfs}}) {
    std::vector<std::string> args = options;
    args.insert(args.end(), {"--host-channel", host + ":/chan:rw:1M", "--", "/bin/sh", "-c",
                             "if unshare -Ur true; then echo ALLOWED; else echo refused; fi"});
    auto r = run(args);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "refused\n") << r.err;
    EXPECT_NE(r.err.find("unshare"), std::string::npos) << r.err;
  }
}

// A container path that a symlink in the root turns into the root itself would put the
// channel over the container's /: refused before anything is made, for a --rootfs and for
// the host's root (a symlink the test leaves in a host directory the container sees).
TEST_P(HostileTest, ContainerPathThatResolvesToTheRootIsRefused) {
  std::string rootfs = world_->path("rootfs");
  oci::make_busybox_rootfs(rootfs);
  fsys::create_directory_symlink("../..", rootfs + "/up");
  fsys::create_directory_symlink("/", rootfs + "/slash");
  std::string host = world_->path("chan");
  for (const char* path : {"/up", "/slash", "/bin/../up", "/up/./"}) {
    auto r = run({"--rootfs", rootfs, "--host-channel", host + ":" + path + ":rw:1M", "--", "/bin/true"});
    EXPECT_EQ(r.status, 2) << path << ": " << r.err;
    EXPECT_NE(r.err.find("resolves to the container's root"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  fsys::create_directory_symlink("../../..", bait_->path() + "/up");
  auto r = run({"--host-channel", host + ":" + bait_->path() + "/up:rw:1M", "--", "/bin/true"});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("resolves to the container's root"), std::string::npos) << r.err;
  EXPECT_FALSE(exists(host));
}

}  // namespace
}  // namespace hostchanfs::testing
