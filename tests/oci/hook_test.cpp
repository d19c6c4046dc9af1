// `hostchanfs oci-hook` on its own: the state and bundle parsing, and the refusals (garbage
// on stdin, a container whose process is gone, a bad annotation), which must change
// nothing: no host path, no controller, no channel.
#include <sys/stat.h>
#include <unistd.h>

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

CommandResult run_hook(const std::string& stdin_text) {
  CommandOptions options;
  options.stdin_text = stdin_text;
  options.env = PrivateHost::get().hook_env();
  return run_command({HOSTCHANFS_BIN, "oci-hook"}, options);
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
        R"({"id":"a","status":"paused","annotations":{"io.hostchanfs.channel":"/a:/b::"}})"}) {
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

}  // namespace
}  // namespace hostchanfs::testing::oci
