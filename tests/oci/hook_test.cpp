// `hostchanfs oci-hook` on its own: the state and bundle parsing, and the refusals (garbage
// on stdin, a container whose process is gone, a bad annotation), which must change
// nothing: no host path, no controller, no channel.
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <functional>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "mountctl/client.hpp"
#include "mountctl/oci_hook.hpp"
#include "tests/oci/oci_support.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/fuse_required.hpp"

namespace hostchanfs::testing::oci {
namespace {

using mountctl::HookStage;
using nlohmann::json;

std::string state_json(const std::string& id, pid_t pid, const std::string& bundle,
                       const std::string& status, const std::optional<std::string>& channel) {
  json state{{"ociVersion", "1.0.2"}, {"id", id}, {"status", status}, {"bundle", bundle}};
  if (pid > 0) state["pid"] = pid;
  if (channel) state["annotations"] = {{"io.hostchanfs.channel", *channel}};
  return state.dump();
}

CommandResult run_hook(const std::string& stdin_text, const std::vector<std::string>& args = {}) {
  CommandOptions options;
  options.stdin_text = stdin_text;
  options.env = PrivateHost::get().hook_env();
  std::vector<std::string> argv = {HOSTCHANFS_BIN, "oci-hook"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, options);
}

bool one_line(const std::string& text) {
  return !text.empty() && text.back() == '\n' && text.find('\n') == text.size() - 1;
}

// Nothing was started: the hook refused before asking for a controller.
bool no_controller() {
  auto client = mountctl::ControllerClient::connect_existing(PrivateHost::get().run_dir());
  return !client && client.error().kind == mountctl::Error::Kind::kNotFound;
}

// ---------------------------------------------------------------------------------------
// Parsing.

TEST(OciState, ReadsRuncCreateRuntime) {
  auto s = mountctl::parse_oci_state(
      R"({"ociVersion":"1.0.2-dev","id":"t2","status":"creating","pid":7602,)"
      R"("bundle":"/b","annotations":{"io.hostchanfs.channel":"/x:/y:rw:1M"}})");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s.value().id, "t2");
  EXPECT_EQ(s.value().pid, 7602);
  EXPECT_EQ(s.value().bundle, "/b");
  EXPECT_EQ(s.value().stage, HookStage::kCreateRuntime);
  EXPECT_EQ(s.value().channel, "/x:/y:rw:1M");
}

TEST(OciState, ReadsCrunPoststop) {
  auto s = mountctl::parse_oci_state(
      R"({"ociVersion":"1.0","id":"t1","pid":0,"root":"rootfs","bundle":"/b",)"
      R"("status":"stopped","annotations":{"io.hostchanfs.channel":"/x:/y:rw:1M"}})");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s.value().stage, HookStage::kPoststop);
  EXPECT_EQ(s.value().pid, 0);
}

// io.hostchanfs.charge beside the channel: who pays for its data (default channel).
TEST(OciState, ReadsTheChargeAnnotation) {
  auto s = mountctl::parse_oci_state(
      R"({"id":"a","status":"creating","pid":1,"bundle":"/b","annotations":)"
      R"({"io.hostchanfs.channel":"/x:/y:rw:1M","io.hostchanfs.charge":"writer"}})");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s.value().charge, fs::Charge::kWriter);
  s = mountctl::parse_oci_state(
      R"({"id":"a","status":"creating","annotations":{"io.hostchanfs.channel":"/x:/y:rw:1M"}})");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s.value().charge, fs::Charge::kChannel);
}

// podman's createRuntime in a pod (as podman 4.3 writes it): the pod owns the channel, and
// the container leaves it when its bundle goes; outside a pod and outside podman, the
// container owns it and leaves at poststop.
TEST(OciState, ReadsThePodAndTheEngine) {
  const std::string sandbox(64, 'f');
  auto s = mountctl::parse_oci_state(
      R"({"id":"c1","status":"creating","pid":7,"bundle":"/s/c1/userdata","annotations":{)"
      R"("io.hostchanfs.channel":"/x:/y:rw:1M","io.container.manager":"libpod",)"
      R"("io.kubernetes.cri-o.SandboxID":")" + sandbox + R"("}})");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(mountctl::channel_owner_id(s.value()), "pod:" + sandbox);
  EXPECT_EQ(mountctl::channel_member(s.value()), (mountctl::Member{"oci:c1", "/s/c1/userdata"}));

  auto runc = mountctl::parse_oci_state(
      R"({"id":"c2","status":"creating","pid":7,"bundle":"/b","annotations":{)"
      R"("io.hostchanfs.channel":"/x:/y:rw:1M"}})");
  ASSERT_TRUE(runc) << runc.error().message;
  EXPECT_EQ(mountctl::channel_owner_id(runc.value()), "oci:c2");
  EXPECT_EQ(mountctl::channel_member(runc.value()), (mountctl::Member{"oci:c2", ""}));

  auto bad = mountctl::parse_oci_state(
      R"({"id":"c3","status":"creating","pid":7,"bundle":"/b","annotations":{)"
      R"("io.hostchanfs.channel":"/x:/y:rw:1M","io.kubernetes.cri-o.SandboxID":"../x"}})");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind, mountctl::Error::Kind::kBadInput);
}

TEST(OciState, WithoutTheAnnotationHasNoChannel) {
  auto s = mountctl::parse_oci_state(R"({"id":"a","status":"running","annotations":{"x":"y"}})");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_FALSE(s.value().channel);
}

TEST(OciState, RefusesWhatIsNoState) {
  for (const char* bad :
       {"garbage", "", "[1,2]", R"({"status":"created"})", R"({"id":"a"})",
        R"({"id":"a","status":"created","pid":"12"})",
        R"({"id":"a","status":"created","annotations":{"io.hostchanfs.channel":3}})",
        R"({"id":"a","status":"paused","annotations":{"io.hostchanfs.channel":"/a:/b::"}})",
        R"({"id":"a","status":"creating","annotations":{"io.hostchanfs.charge":"nobody"}})",
        R"({"id":"a","status":"creating","annotations":{"io.hostchanfs.charge":1}})"}) {
    auto s = mountctl::parse_oci_state(bad);
    ASSERT_FALSE(s) << bad;
    EXPECT_EQ(s.error().kind, mountctl::Error::Kind::kBadInput) << bad;
    EXPECT_EQ(s.error().message.find('\n'), std::string::npos) << bad;
  }
}

TEST(OciBundle, RootPathIsRelativeToTheBundle) {
  TempDir dir;
  write_file(dir / "config.json", R"({"root":{"path":"rootfs"}})");
  auto c = mountctl::read_bundle_config(dir.path());
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c.value().rootfs, (dir / "rootfs").string());
  EXPECT_FALSE(c.value().root_uid);
  write_file(dir / "config.json", R"({"root":{"path":"/srv/root/"}})");
  c = mountctl::read_bundle_config(dir.path());
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c.value().rootfs, "/srv/root");
}

TEST(OciBundle, UserNamespaceMapsContainerRoot) {
  TempDir dir;
  write_file(dir / "config.json", R"({"root":{"path":"rootfs"},"linux":{
      "uidMappings":[{"containerID":1,"hostID":500,"size":10},{"containerID":0,"hostID":100000,"size":1}],
      "gidMappings":[{"containerID":0,"hostID":200000,"size":65536}]}})");
  auto c = mountctl::read_bundle_config(dir.path());
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c.value().root_uid, 100000u);
  EXPECT_EQ(c.value().root_gid, 200000u);
  EXPECT_FALSE(mountctl::host_id_of_container_root(json::parse(
      R"([{"containerID":1,"hostID":5,"size":9}])")));
}

TEST(OciBundle, RefusesAMissingConfig) {
  TempDir dir;
  auto c = mountctl::read_bundle_config(dir.path());
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("config.json"), std::string::npos);
  EXPECT_FALSE(mountctl::read_bundle_config("relative/bundle"));
}

// ---------------------------------------------------------------------------------------
// The binary, refusing.

TEST(OciHook, GarbageOnStdinFailsAndChangesNothing) {
  HOSTCHANFS_REQUIRE_FUSE();
  auto r = run_hook("this is not json");
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_TRUE(one_line(r.err)) << r.err;
  EXPECT_EQ(r.err.rfind("hostchanfs: ", 0), 0u) << r.err;
  EXPECT_TRUE(no_controller());
}

TEST(OciHook, ContainerWithoutAnnotationIsLeftAlone) {
  HOSTCHANFS_REQUIRE_FUSE();
  auto r = run_hook(state_json("plain", ::getpid(), "/nonexistent", "creating", std::nullopt));
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out + r.err, "");
  EXPECT_TRUE(no_controller());
}

TEST(OciHook, DeadProcessFailsAndChangesNothing) {
  HOSTCHANFS_REQUIRE_FUSE();
  TempDir dir;
  BundleOptions options;
  options.args = {"/bin/true"};
  make_bundle(dir / "bundle", options);
  ChildProcess gone = ChildProcess::fork([] { return 0; });
  pid_t child = gone.pid();
  ASSERT_EQ(gone.wait(), 0);  // now it is gone (reaped)

  auto host_path = dir / "chan";
  auto r = run_hook(state_json("dead", child, (dir / "bundle").string(), "created",
                               host_path.string() + ":/chan:rw:1M"));
  EXPECT_NE(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find("not running"), std::string::npos) << r.err;
  EXPECT_FALSE(stdfs::exists(host_path));
  EXPECT_TRUE(no_controller());
}

TEST(OciHook, PoststopOfAChannelThatIsGoneIsFine) {
  HOSTCHANFS_REQUIRE_FUSE();
  TempDir dir;
  auto r = run_hook(state_json("gone", 0, dir.path(), "stopped",
                               (dir / "chan").string() + ":/chan:rw:1M"));
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_FALSE(stdfs::exists(dir / "chan"));
}

// A bad annotation fails the container's creation with the CLI's message, and leaves no
// container and no host path.
TEST(OciHook, BadAnnotationFailsCreation) {
  HOSTCHANFS_REQUIRE_FUSE();
  PrivateHost::get();
  TempDir dir;
  auto host_path = dir / "chan";
  std::string bad = host_path.string() + ":/chan:rw:12 parsecs";
  auto expected = mountctl::parse_spec(bad);
  ASSERT_FALSE(expected);

  for (const std::string runtime : {"runc", "crun"}) {
    BundleOptions options;
    options.runtime = runtime;
    options.args = {"/bin/true"};
    options.channel = bad;
    make_bundle(dir / runtime, options);
    OciContainer ct(runtime, dir / runtime, "hc-bad-annotation-" + runtime);
    auto created = ct.create();
    EXPECT_NE(created.exit_code, 0) << created.describe();
    // runc quotes the hook's stderr with Go escapes.
    std::string err = created.err;
    for (auto at = err.find("\\\""); at != std::string::npos; at = err.find("\\\"", at)) {
      err.erase(at, 1);
    }
    EXPECT_NE(err.find("hostchanfs: " + expected.error().message), std::string::npos) << err;
    EXPECT_EQ(ct.status(), "") << runtime;
    EXPECT_FALSE(stdfs::exists(host_path)) << runtime;
  }
}

// ---------------------------------------------------------------------------------------
// Who may choose a host path: a channel the hook makes must be below the operator's root.

// A "container": a process in a mount namespace of its own, waiting; and the bundle of it
// (config.json and an empty rootfs, all the hook reads).
class HookedContainer {
 public:
  explicit HookedContainer(const stdfs::path& bundle) : bundle_(bundle) {
    stdfs::create_directories(bundle / "rootfs");
    write_file(bundle / "config.json", R"({"root":{"path":"rootfs"}})");
    int ready[2];
    if (::pipe(ready) < 0) throw std::runtime_error("pipe");
    process_ = ChildProcess::fork([ready] {
      ::close(ready[0]);
      if (::unshare(CLONE_NEWNS) < 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) return 1;
      char c = 'r';
      if (::write(ready[1], &c, 1) != 1) return 1;
      ::pause();
      return 0;
    });
    ::close(ready[1]);
    char c;
    bool ok = ::read(ready[0], &c, 1) == 1;
    ::close(ready[0]);
    if (!ok) throw std::runtime_error("the container process did not start");
  }
  pid_t pid() const { return process_.pid(); }
  std::string bundle() const { return bundle_.string(); }
  // Its mount points (as it sees them).
  std::string mountinfo() const { return read_file("/proc/" + std::to_string(pid()) + "/mountinfo"); }

 private:
  stdfs::path bundle_;
  ChildProcess process_;
};

TEST(OciHookPlace, AChannelOutsideTheHookRootIsRefusedAndNothingIsMade) {
  HOSTCHANFS_REQUIRE_FUSE();
  TempDir dir;
  write_file(dir / "config.json", json{{"hook_channel_root", (dir / "allowed").string()}}.dump());
  HookedContainer container(dir / "bundle");
  // Below the root only: not beside it, not the root itself, not where a drop-in would run
  // as root at the next reload.
  for (const std::string& host : std::vector<std::string>{(dir / "outside/chan").string(), (dir / "allowed").string(),
                                                          "/etc/systemd/system/hostchanfs-test.service.d"}) {
    auto r = run_hook(state_json("c1", container.pid(), container.bundle(), "creating", host + ":/c:rw:1M"),
                      {"--config", (dir / "config.json").string()});
    EXPECT_EQ(r.exit_code, 2) << r.describe();
    EXPECT_TRUE(one_line(r.err)) << r.err;
    EXPECT_EQ(r.err, "hostchanfs: container c1: host path " + host + " is outside " + (dir / "allowed").string() +
                         ": channels made through the annotation io.hostchanfs.channel must be below it (the "
                         "operator sets \"hook_channel_root\" in " + (dir / "config.json").string() + ")\n");
  }
  EXPECT_FALSE(stdfs::exists(dir / "outside"));
  EXPECT_FALSE(stdfs::exists(dir / "allowed"));
  EXPECT_FALSE(stdfs::exists("/etc/systemd/system/hostchanfs-test.service.d"));
  EXPECT_TRUE(no_controller());
  // The default root is /run/hostchanfs/channels (no configuration file).
  auto r = run_hook(state_json("c1", container.pid(), container.bundle(), "creating", (dir / "x").string() + ":/c:rw:1M"),
                    {"--config", (dir / "none.json").string()});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("is outside /run/hostchanfs/channels"), std::string::npos) << r.err;
}

TEST(OciHookPlace, TheConfigurationMustBeRootsOwnAndWellFormed) {
  HOSTCHANFS_REQUIRE_FUSE();
  TempDir dir;
  HookedContainer container(dir / "bundle");
  std::string good = json{{"hook_channel_root", "/"}}.dump();
  struct Case {
    std::string name, text;
    std::function<void(const std::string&)> spoil;
    std::string says;
  };
  std::vector<Case> cases = {
      {"group.json", good, [](const std::string& p) { ::chmod(p.c_str(), 0664); }, "is not a plain file of root's"},
      {"nobody.json", good, [](const std::string& p) { ::chown(p.c_str(), 65534, 65534); }, "is not a plain file of root's"},
      {"link.json", good, [&](const std::string& p) {
         ::unlink(p.c_str());
         write_file(dir / "target.json", json{{"hook_channel_root", "/"}}.dump());
         ::symlink((dir / "target.json").c_str(), p.c_str());
       }, "is a symlink"},
      {"key.json", R"({"hook_channel_roots":"/"})", nullptr, "has an unknown key \"hook_channel_roots\""},
      {"root.json", R"({"hook_channel_root":"relative"})", nullptr, "that is not a clean absolute path"},
      {"text.json", "not json", nullptr, "is not a JSON object"}};
  for (const Case& c : cases) {
    std::string path = (dir / c.name).string();
    write_file(path, c.text);
    if (c.spoil) c.spoil(path);
    auto r = run_hook(state_json("c2", container.pid(), container.bundle(), "creating",
                                 (dir / "chan").string() + ":/c:rw:1M"),
                      {"--config", path});
    EXPECT_EQ(r.exit_code, 2) << c.name << ": " << r.describe();
    EXPECT_TRUE(one_line(r.err)) << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << c.name << ": " << r.err;
  }
  EXPECT_FALSE(stdfs::exists(dir / "chan"));
  EXPECT_TRUE(no_controller());
}

// `hostchanfs run` makes its container's channel itself (owner oci:<id>), wherever the
// operator said; the hook then only binds it, even outside the hook's root.
TEST(OciHookPlace, AContainerIsGivenItsOwnChannelWhereverItIs) {
  HOSTCHANFS_REQUIRE_FUSE();
  TempDir dir;
  write_file(dir / "config.json", json{{"hook_channel_root", (dir / "allowed").string()}}.dump());
  HookedContainer container(dir / "bundle");
  std::string host = (dir / "anywhere/chan").string();
  std::string spec_text = host + ":/chan:rw:1M";
  PrivateHost::get().start_controller();
  {
    auto client = mountctl::ControllerClient::connect_existing(PrivateHost::get().run_dir());
    ASSERT_TRUE(client) << client.error().message;
    auto created = client.value().create(mountctl::parse_spec(spec_text).value(), {},
                                         mountctl::Owner{mountctl::oci_owner_id("c3"), std::nullopt});
    ASSERT_TRUE(created) << created.error().message;
  }
  std::vector<std::string> args = {"--config", (dir / "config.json").string()};
  auto r = run_hook(state_json("c3", container.pid(), container.bundle(), "creating", spec_text), args);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(container.mountinfo().find((dir / "bundle/rootfs/chan").string()), std::string::npos)
      << container.mountinfo();
  // Another container may not take it, nor this one have it with another spec.
  r = run_hook(state_json("c4", container.pid(), container.bundle(), "creating", spec_text), args);
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  r = run_hook(state_json("c3", container.pid(), container.bundle(), "creating", host + ":/other:rw:1M"), args);
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  r = run_hook(state_json("c3", 0, container.bundle(), "stopped", spec_text), args);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_FALSE(stdfs::exists(host));
  EXPECT_FALSE(is_fuse_mount(host));
}

}  // namespace
}  // namespace hostchanfs::testing::oci
