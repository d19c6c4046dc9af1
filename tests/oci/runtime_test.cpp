// Host channels through the hook, with runc and crun (busybox bundles) and podman
// (--rootfs). That the runtimes themselves run on this machine is preflight_test.cpp's.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <optional>
#include <sstream>

#include "mountctl/client.hpp"

#include "tests/oci/oci_support.hpp"
#include "tests/support/fuse_required.hpp"

namespace hostchanfs::testing::oci {
namespace {

using nlohmann::json;

class Runtime : public ::testing::TestWithParam<std::string> {};

// ---------------------------------------------------------------------------------------
// Channels through the hook.

// The mount options of `path` as the process that printed /proc/self/mountinfo saw them.
std::string mount_options_in(const std::string& mountinfo, const std::string& path) {
  std::istringstream in(mountinfo);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::string id, parent, dev, root, point, options;
    if (words >> id >> parent >> dev >> root >> point >> options && point == path) return options;
  }
  return "";
}

struct ChannelCase {
  std::string runtime;
  bool read_only;
};
void PrintTo(const ChannelCase& c, std::ostream* os) {
  *os << c.runtime << (c.read_only ? " ro" : " rw");
}

std::string case_name(const ::testing::TestParamInfo<ChannelCase>& c) {
  return c.param.runtime + (c.param.read_only ? "_ro" : "_rw");
}

class RuntimeChannel : public ::testing::TestWithParam<ChannelCase> {};

// create -> the channel is mounted on the host and bound in the container; host and
// container exchange data; the process exits -> channel and data remain; delete -> mount,
// host path and daemon gone.
TEST_P(RuntimeChannel, LivesFromCreateToDelete) {
  HOSTCHANFS_REQUIRE_FUSE();
  const auto& [runtime, read_only] = GetParam();
  PrivateHost::get().start_controller();
  TempDir dir;
  auto host_path = dir / "host" / "chan";
  BundleOptions options;
  options.runtime = runtime;
  options.channel = host_path.string() + ":/chan:" + (read_only ? "ro" : "rw") + ":1M";
  options.args = {"/bin/sh", "-c",
                  "cat /chan/from-host; "
                  "if echo from-container > /chan/from-container; then echo wrote; "
                  "else echo write-refused; fi; "
                  "cat /proc/self/mountinfo"};
  make_bundle(dir / "bundle", options);
  OciContainer ct(runtime, dir / "bundle", "hc-" + case_name({GetParam(), 0}));

  auto created = ct.create();
  ASSERT_EQ(created.exit_code, 0) << created.describe();
  ASSERT_TRUE(is_fuse_mount(host_path)) << "no channel at " << host_path;
  struct stat st {};
  ASSERT_EQ(::stat(host_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 01777u);
  auto channel = channel_at(host_path);
  ASSERT_TRUE(channel);
  EXPECT_EQ(channel->owner_id, "oci:" + ct.id());
  EXPECT_EQ(channel->spec.read_only, read_only);
  write_file(host_path / "from-host", "from the host\n");

  auto started = ct.start();
  ASSERT_EQ(started.exit_code, 0) << started.describe();
  ASSERT_TRUE(ct.wait_stopped());
  auto output = ct.output();
  EXPECT_EQ(output.rfind("from the host\n", 0), 0u) << output;
  auto options_seen = mount_options_in(output, "/chan");
  ASSERT_NE(options_seen, "") << output;
  for (const char* o : {"nosuid", "nodev", "noexec"}) {
    EXPECT_NE(options_seen.find(o), std::string::npos) << options_seen;
  }
  if (read_only) {
    EXPECT_NE(output.find("write-refused"), std::string::npos) << output;
    EXPECT_EQ(options_seen.rfind("ro", 0), 0u) << options_seen;
    EXPECT_FALSE(stdfs::exists(host_path / "from-container"));
  } else {
    EXPECT_NE(output.find("wrote"), std::string::npos) << output;
    EXPECT_EQ(read_file(host_path / "from-container"), "from-container\n");
  }

  // The process has exited; the container is not deleted: the channel stays, with its data.
  EXPECT_TRUE(is_fuse_mount(host_path));
  EXPECT_EQ(read_file(host_path / "from-host"), "from the host\n");
  channel = channel_at(host_path);
  ASSERT_TRUE(channel);
  pid_t daemon = channel->daemon_pid;
  ASSERT_GT(daemon, 0);

  auto removed = ct.remove();
  ASSERT_EQ(removed.exit_code, 0) << removed.describe();
  EXPECT_FALSE(stdfs::exists(host_path));
  EXPECT_FALSE(channel_at(host_path));
  EXPECT_TRUE(wait_process_gone(daemon));
}

// podman calls createRuntime again on every start of the same container; the hook must
// then re-bind the channel it already made, not fail.
TEST_P(Runtime, CreateRuntimeAgainRebindsTheChannel) {
  HOSTCHANFS_REQUIRE_FUSE();
  const std::string& runtime = GetParam();
  PrivateHost::get().start_controller();
  TempDir dir;
  auto host_path = dir / "chan";
  BundleOptions options;
  options.runtime = runtime;
  options.channel = host_path.string() + ":/chan:rw:64k";
  options.args = {"/bin/cat", "/chan/kept"};
  make_bundle(dir / "bundle", options);
  OciContainer ct(runtime, dir / "bundle", "hc-again-" + runtime);
  auto created = ct.create();
  ASSERT_EQ(created.exit_code, 0) << created.describe();
  write_file(host_path / "kept", "kept across the second createRuntime\n");

  CommandOptions hook;
  hook.env = PrivateHost::get().hook_env();
  hook.stdin_text = nlohmann::json{{"ociVersion", "1.0.2"}, {"id", ct.id()}, {"status", "created"},
                                   {"pid", ct.pid()}, {"bundle", (dir / "bundle").string()},
                                   {"annotations", {{"io.hostchanfs.channel", *options.channel}}}}
                        .dump();
  auto again = run_command({HOSTCHANFS_BIN, "oci-hook"}, hook);
  EXPECT_EQ(again.exit_code, 0) << again.describe();
  ASSERT_EQ(ct.start().exit_code, 0);
  ASSERT_TRUE(ct.wait_stopped());
  EXPECT_EQ(ct.output(), "kept across the second createRuntime\n");
  ASSERT_EQ(ct.remove().exit_code, 0);
  EXPECT_FALSE(stdfs::exists(host_path));
}

INSTANTIATE_TEST_SUITE_P(OciRuntimes, Runtime, ::testing::Values("runc", "crun"), runtime_name);
INSTANTIATE_TEST_SUITE_P(OciRuntimes, RuntimeChannel,
                         ::testing::Values(ChannelCase{"runc", false}, ChannelCase{"runc", true},
                                           ChannelCase{"crun", false}, ChannelCase{"crun", true}),
                         case_name);

// With a user namespace, the channel root belongs to the host ids container root maps to.
TEST(RuntimeChannelUserNamespace, RootBelongsToMappedRoot) {
  HOSTCHANFS_REQUIRE_FUSE();
  PrivateHost::get().start_controller();
  TempDir dir;
  auto host_path = dir / "chan";
  BundleOptions options;
  options.channel = host_path.string() + ":/chan:rw:64k";
  options.user_namespace = true;
  options.args = {"/bin/sh", "-c", "echo in-userns > /chan/f && ls -ln /chan/f"};
  make_bundle(dir / "bundle", options);
  OciContainer ct("runc", dir / "bundle", "hc-userns");
  auto created = ct.create();
  ASSERT_EQ(created.exit_code, 0) << created.describe();
  struct stat st {};
  ASSERT_EQ(::stat(host_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kUserNsHostId);
  EXPECT_EQ(st.st_gid, kUserNsHostId);
  ASSERT_EQ(ct.start().exit_code, 0);
  ASSERT_TRUE(ct.wait_stopped());
  EXPECT_EQ(read_file(host_path / "f"), "in-userns\n") << ct.output();
  ASSERT_EQ(ct.remove().exit_code, 0);
  EXPECT_FALSE(stdfs::exists(host_path));
}

// The usual runc path with no controller running yet: the hook starts one (detached; the
// test's subreaper adopts it and stops it at exit), and the channel works as before.
TEST(RuntimeChannelOnDemand, HookStartsTheController) {
  HOSTCHANFS_REQUIRE_FUSE();
  PrivateHost::get();
  TempDir dir;
  auto host_path = dir / "chan";
  BundleOptions options;
  options.channel = host_path.string() + ":/chan:rw:64k";
  options.args = {"/bin/sh", "-c", "echo on-demand > /chan/f"};
  make_bundle(dir / "bundle", options);
  OciContainer ct("runc", dir / "bundle", "hc-on-demand");
  auto created = ct.create();
  ASSERT_EQ(created.exit_code, 0) << created.describe();
  ASSERT_TRUE(is_fuse_mount(host_path));
  ASSERT_EQ(ct.start().exit_code, 0);
  ASSERT_TRUE(ct.wait_stopped());
  EXPECT_EQ(read_file(host_path / "f"), "on-demand\n") << ct.output();
  ASSERT_EQ(ct.remove().exit_code, 0);
  EXPECT_FALSE(stdfs::exists(host_path));
}

// `crun run` (foreground) waits for every process it adopts, so the controller must run
// before it (README: OCI engines); then run's implicit delete calls poststop.
TEST(RuntimeChannelForeground, CrunRunWithARunningController) {
  HOSTCHANFS_REQUIRE_FUSE();
  auto& host = PrivateHost::get();
  host.start_controller();
  TempDir dir;
  auto host_path = dir / "chan";
  BundleOptions options;
  options.runtime = "crun";
  options.channel = host_path.string() + ":/chan:rw:64k";
  options.args = {"/bin/sh", "-c", "echo through-run > /chan/f && cat /chan/f"};
  make_bundle(dir / "bundle", options);
  OciContainer guard("crun", dir / "bundle", "hc-crun-run");  // deletes if left
  auto r = run_command({"crun", "--root", (host.dir() / "state-crun").string(), "run", "--bundle",
                        (dir / "bundle").string(), guard.id()});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "through-run\n");
  EXPECT_FALSE(stdfs::exists(host_path));
  EXPECT_FALSE(channel_at(host_path));
}

// podman (rootful, --rootfs, hooks.d from the shipped file): the seed's dd, then nothing
// left once the container is removed.
TEST(PodmanChannel, SeedDdAndNothingLeft) {
  HOSTCHANFS_REQUIRE_FUSE();
  PrivateHost::get().start_controller();
  TempDir dir;
  make_busybox_rootfs(dir / "rootfs");
  add_host_program(dir / "rootfs", "/usr/bin/dd");
  auto host_path = dir / "testdir";
  Podman podman(dir / "podman");
  auto r = podman.run("hc-podman-seed", (dir / "rootfs").string(),
                      {"--annotation", "io.hostchanfs.channel=" + host_path.string() +
                                           ":/testdir:rw:32M"},
                      {"/usr/bin/dd", "if=/dev/zero", "of=/testdir/test.file", "bs=1024", "count=64K"});
  auto all = r.out + r.err;
  EXPECT_NE(all.find("No space left on device"), std::string::npos) << r.describe();
  EXPECT_NE(all.find("32769+0 records in\n32768+0 records out\n33554432 bytes"),
            std::string::npos)
      << r.describe();
  // --rm deletes the container as `run` returns: the controller sees its bundle go.
  EXPECT_TRUE(eventually([&] { return !channel_at(host_path); }));
  EXPECT_FALSE(stdfs::exists(host_path));
  auto ps = podman.podman({"ps", "--all", "--quiet"});
  EXPECT_EQ(ps.out, "") << ps.describe();
}

// The `--mount` flag `hostchanfs mount` prints, given to podman as a shell would: a host
// path with a comma and "dst=" in it stays one source and adds no destination.
TEST(PodmanChannel, ReadsTheMountFlagThatMountPrintsAsOneSource) {
  HOSTCHANFS_REQUIRE_FUSE();
  PrivateHost::get().start_controller();
  TempDir dir;
  make_busybox_rootfs(dir / "rootfs");
  std::string host = (dir / "c,dst=").string() + (dir / "etc").string();
  CommandOptions env;
  env.env = PrivateHost::get().hook_env();
  auto mounted = run_command({HOSTCHANFS_BIN, "mount", host + ":/x:rw:1M"}, env);
  ASSERT_EQ(mounted.exit_code, 0) << mounted.describe();
  std::string flag = mounted.out.substr(0, mounted.out.find('\n'));
  ASSERT_EQ(flag.rfind("--mount ", 0), 0u) << flag;
  // What a shell makes of the printed word is what podman gets.
  auto word = run_command({"/bin/sh", "-c", "printf '%s' " + flag.substr(8)});
  ASSERT_EQ(word.exit_code, 0) << word.describe();

  Podman podman(dir / "podman");
  const std::string name = "hc-podman-mount-flag";
  auto created = podman.podman({"create", "--name", name, "--cgroups=disabled", "--network", "none",
                                "--mount", word.out, "--rootfs", (dir / "rootfs").string(), "/bin/true"});
  ASSERT_EQ(created.exit_code, 0) << created.describe();
  podman.adopt(name);
  auto inspected = podman.podman({"inspect", "--format", "{{json .Mounts}}", name});
  ASSERT_EQ(inspected.exit_code, 0) << inspected.describe();
  json mounts = json::parse(inspected.out);
  ASSERT_EQ(mounts.size(), 1u) << mounts.dump();
  EXPECT_EQ(mounts[0]["Source"], host);
  EXPECT_EQ(mounts[0]["Destination"], "/x");
  EXPECT_FALSE(stdfs::exists(dir / "etc"));
  EXPECT_EQ(run_command({HOSTCHANFS_BIN, "umount", host}, env).exit_code, 0);
}

// podman containers over a busybox rootfs, each with a 64k channel at <dir>/chan (/chan
// inside), removed at the end.
class PodmanLifecycle : public ::testing::Test {
 protected:
  void SetUp() override {
    HOSTCHANFS_REQUIRE_FUSE();
    PrivateHost::get().start_controller();
    make_busybox_rootfs(dir_ / "rootfs");
  }
  CommandResult create(const std::string& name, const std::vector<std::string>& command) {
    std::vector<std::string> args = {"create", "--name", name, "--cgroups=disabled", "--network",
                                     "none", "--annotation",
                                     "io.hostchanfs.channel=" + host_path_.string() + ":/chan:rw:64k",
                                     "--rootfs", (dir_ / "rootfs").string()};
    args.insert(args.end(), command.begin(), command.end());
    podman_.adopt(name);
    return podman_.podman(args);
  }
  // Removes the container; the channel goes (a moment after: its bundle went).
  void expect_rm_removes_the_channel(const std::string& name) {
    auto removed = podman_.podman({"rm", "--force", "--time", "10", name});
    EXPECT_EQ(removed.exit_code, 0) << removed.describe();
    EXPECT_TRUE(eventually([&] { return !channel_at(host_path_); }));
    EXPECT_FALSE(stdfs::exists(host_path_));
  }
  TempDir dir_;
  stdfs::path host_path_ = dir_ / "chan";
  Podman podman_{dir_ / "podman"};
};

// podman's lifecycle (README: OCI engines): podman calls poststop at every stop, yet the
// channel and its data stay through stop and start, and go when the container is removed
// (its bundle directory goes).
TEST_F(PodmanLifecycle, StopAndStartKeepTheDataRmRemoves) {
  const std::string name = "hc-podman-restart";
  auto created = create(name, {"/bin/sh", "-c",
                               "cat /chan/f > /chan/seen 2>&1; trap 'exit 0' TERM; "
                               "sleep 1000 & wait $!"});
  ASSERT_EQ(created.exit_code, 0) << created.describe();
  auto started = podman_.podman({"start", name});
  ASSERT_EQ(started.exit_code, 0) << started.describe();
  ASSERT_TRUE(is_fuse_mount(host_path_));
  write_file(host_path_ / "f", "first run\n");

  auto stopped = podman_.podman({"stop", "--time", "10", name});
  ASSERT_EQ(stopped.exit_code, 0) << stopped.describe();
  EXPECT_TRUE(is_fuse_mount(host_path_));
  EXPECT_EQ(read_file(host_path_ / "f"), "first run\n");

  started = podman_.podman({"start", name});
  ASSERT_EQ(started.exit_code, 0) << started.describe();
  EXPECT_TRUE(is_fuse_mount(host_path_));
  // The restarted container sees what the first run left.
  EXPECT_TRUE(eventually([&] { return read_file(host_path_ / "seen") == "first run\n"; }))
      << read_file(host_path_ / "seen");
  auto channel = channel_at(host_path_);
  ASSERT_TRUE(channel);
  pid_t daemon = channel->daemon_pid;
  expect_rm_removes_the_channel(name);
  EXPECT_TRUE(wait_process_gone(daemon));
}

// A container whose start fails after createRuntime has a channel (poststop may never
// run for it); once it is removed, nothing is left.
TEST_F(PodmanLifecycle, FailedStartLeavesNothingOnceRemoved) {
  const std::string name = "hc-podman-failed-start";
  // The runtime makes the container (createRuntime runs), then cannot exec its process.
  auto created = create(name, {"/chan/no-such-program"});
  ASSERT_EQ(created.exit_code, 0) << created.describe();
  auto started = podman_.podman({"start", name});
  ASSERT_NE(started.exit_code, 0) << started.describe();
  ASSERT_TRUE(channel_at(host_path_)) << "createRuntime did not run: " << started.describe();
  expect_rm_removes_the_channel(name);
}

}  // namespace
}  // namespace hostchanfs::testing::oci
