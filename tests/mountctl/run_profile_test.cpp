// The container profile of `hostchanfs run` (run_bundle.hpp) held against what the
// runtimes themselves write (`runc spec`, `crun spec`): never less; and the seccomp
// conversion (run_seccomp.hpp), on small profiles and on the installed containers' one.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "mountctl/run_bundle.hpp"
#include "mountctl/run_seccomp.hpp"
#include "tests/oci/oci_support.hpp"

namespace hostchanfs::mountctl {
namespace {

using nlohmann::json;
using testing::oci::read_file;
using testing::oci::run_command;
using testing::oci::TempDir;

ContainerConfig sample_config() {
  ContainerConfig config;
  config.args = {"/bin/true"};
  config.rootfs = "/b/rootfs";
  config.channel = "/testdir:/testdir:rw:33554432";
  config.hook_program = "/usr/local/bin/hostchanfs";
  config.hook_args = {"--run-dir", "/tmp/run"};
  config.hooks_log = "/b/hooks.log";
  return config;
}

std::set<std::string> strings_of(const json& list) {
  std::set<std::string> out;
  for (const json& v : list) out.insert(v.get<std::string>());
  return out;
}

bool includes(const std::set<std::string>& big, const std::set<std::string>& small) {
  return std::includes(big.begin(), big.end(), small.begin(), small.end());
}

class RuntimeSpec : public ::testing::TestWithParam<std::string> {};

TEST_P(RuntimeSpec, OurProfileIsNeverLessThanTheRuntimesDefault) {
  TempDir dir;
  testing::oci::CommandOptions in_dir;
  in_dir.cwd = dir.path();
  auto spec = run_command({GetParam(), "spec"}, in_dir);
  ASSERT_EQ(spec.exit_code, 0) << spec.describe();
  json theirs = json::parse(read_file(dir / "config.json"));
  json ours = make_oci_config(sample_config());

  std::set<std::string> our_namespaces, their_namespaces;
  for (const json& ns : ours["linux"]["namespaces"]) our_namespaces.insert(ns["type"]);
  for (const json& ns : theirs["linux"]["namespaces"]) their_namespaces.insert(ns["type"]);
  EXPECT_TRUE(includes(our_namespaces, their_namespaces));
  EXPECT_TRUE(includes(our_namespaces, {"cgroup", "ipc", "mount", "network", "pid", "user", "uts"}));

  const std::set<std::string> allowed = {"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"};
  for (const char* set : {"bounding", "effective", "permitted", "ambient", "inheritable"}) {
    auto our_set = strings_of(ours["process"]["capabilities"].value(set, json::array()));
    auto their_set = strings_of(theirs["process"]["capabilities"].value(set, json::array()));
    EXPECT_TRUE(includes(allowed, our_set)) << set;
    EXPECT_TRUE(includes(their_set, our_set)) << set << ": more than " << GetParam() << " gives";
  }
  EXPECT_TRUE(ours["process"]["capabilities"]["inheritable"].empty());
  EXPECT_TRUE(ours["process"]["noNewPrivileges"].get<bool>());
  EXPECT_TRUE(ours["root"]["readonly"].get<bool>());
  EXPECT_TRUE(includes(strings_of(ours["linux"]["maskedPaths"]), strings_of(theirs["linux"]["maskedPaths"])));
  EXPECT_TRUE(includes(strings_of(ours["linux"]["readonlyPaths"]), strings_of(theirs["linux"]["readonlyPaths"])));
  // Devices: every one denied, only the runtime's defaults made.
  EXPECT_EQ(ours["linux"]["resources"]["devices"], theirs["linux"]["resources"]["devices"]);
  EXPECT_FALSE(ours["linux"].contains("devices"));
  // Every mount of theirs, with at least its restrictions.
  for (const json& their_mount : theirs["mounts"]) {
    auto it = std::find_if(ours["mounts"].begin(), ours["mounts"].end(),
                           [&](const json& m) { return m["destination"] == their_mount["destination"]; });
    ASSERT_NE(it, ours["mounts"].end()) << their_mount.dump();
    EXPECT_EQ((*it)["type"], their_mount["type"]);
    std::set<std::string> restrictions;
    for (const auto& o : their_mount.value("options", json::array())) {
      for (const char* r : {"nosuid", "noexec", "nodev", "ro"}) {
        if (o == r) restrictions.insert(r);
      }
    }
    EXPECT_TRUE(includes(strings_of((*it)["options"]), restrictions)) << their_mount.dump();
  }
}

INSTANTIATE_TEST_SUITE_P(Runtimes, RuntimeSpec, ::testing::Values("runc", "crun"), testing::oci::runtime_name);

TEST(RunProfile, UserNamespaceMapsToTheUnprivilegedRangeUnlessOptedOut) {
  ContainerConfig config = sample_config();
  json with = make_oci_config(config);
  json mapping = json::array({{{"containerID", 0}, {"hostID", kUserNsHostId}, {"size", kUserNsSize}}});
  EXPECT_EQ(with["linux"]["uidMappings"], mapping);
  EXPECT_EQ(with["linux"]["gidMappings"], mapping);
  config.user_namespace = false;
  json without = make_oci_config(config);
  EXPECT_FALSE(without["linux"].contains("uidMappings"));
  for (const json& ns : without["linux"]["namespaces"]) EXPECT_NE(ns["type"], "user");
}

TEST(RunProfile, MemoryLimitHooksAndAnnotation) {
  ContainerConfig config = sample_config();
  EXPECT_FALSE(make_oci_config(config)["linux"]["resources"].contains("memory"));
  config.memory_limit = 24u << 20;
  json c = make_oci_config(config);
  EXPECT_EQ(c["linux"]["resources"]["memory"]["limit"], 25165824u);
  EXPECT_EQ(c["annotations"]["io.hostchanfs.channel"], "/testdir:/testdir:rw:33554432");
  EXPECT_EQ(c["annotations"]["run.oci.hooks.stderr"], "/b/hooks.log");
  for (const char* stage : {"createRuntime", "poststop"}) {
    ASSERT_EQ(c["hooks"][stage].size(), 1u) << stage;
    EXPECT_EQ(c["hooks"][stage][0]["path"], "/usr/local/bin/hostchanfs");
    EXPECT_EQ(c["hooks"][stage][0]["args"], json({"hostchanfs", "oci-hook", "--run-dir", "/tmp/run"}));
  }
  EXPECT_EQ(c["process"]["terminal"], false);
  EXPECT_EQ(c["process"]["args"], json({"/bin/true"}));
}

// ---------------------------------------------------------------------------------------
// Seccomp.

SeccompTarget amd64(std::vector<std::string> bounding = container_capabilities()) {
  return SeccompTarget{"amd64", std::move(bounding), 6, 18};
}

// The rules (action and args) that name `syscall`.
std::vector<json> rules_for(const json& seccomp, const std::string& syscall) {
  std::vector<json> out;
  for (const json& rule : seccomp["syscalls"]) {
    if (std::count(rule["names"].begin(), rule["names"].end(), syscall)) out.push_back(rule);
  }
  return out;
}

TEST(RunSeccomp, KeepsTheRulesWhoseIncludesHoldAndNoExcludeDoes) {
  json profile = json::parse(R"({
    "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
    "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
    "syscalls": [
      {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "args": [], "includes": {}, "excludes": {}},
      {"name": "arch_prctl", "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
      {"names": ["breakpoint"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm", "arm64"]}},
      {"names": ["chroot"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_CHROOT"]}},
      {"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "excludes": {"caps": ["CAP_SYS_CHROOT"]}},
      {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": null, "includes": {"caps": ["CAP_AUDIT_WRITE"]}},
      {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
       "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
      {"names": ["futex_waitv"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "5.16"}},
      {"names": ["future_call"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "7.1"}},
      {"names": ["old_call"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.0"}}
    ]})");
  auto converted = oci_seccomp_from_profile(profile, amd64());
  ASSERT_TRUE(converted) << converted.error().message;
  const json& s = converted.value();
  EXPECT_EQ(s["defaultAction"], "SCMP_ACT_ERRNO");
  EXPECT_EQ(s["defaultErrnoRet"], 38);
  EXPECT_EQ(s["architectures"], json({"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"}));
  EXPECT_EQ(rules_for(s, "read").size(), 1u);
  EXPECT_EQ(rules_for(s, "arch_prctl").size(), 1u);
  EXPECT_TRUE(rules_for(s, "breakpoint").empty());
  ASSERT_EQ(rules_for(s, "chroot").size(), 1u);
  EXPECT_EQ(rules_for(s, "chroot")[0]["action"], "SCMP_ACT_ERRNO");
  EXPECT_EQ(rules_for(s, "chroot")[0]["errnoRet"], 1);
  ASSERT_EQ(rules_for(s, "socket").size(), 1u);
  EXPECT_FALSE(rules_for(s, "socket")[0].contains("args"));
  EXPECT_EQ(rules_for(s, "personality")[0]["args"][0]["value"], 8);
  EXPECT_EQ(rules_for(s, "futex_waitv").size(), 1u);
  EXPECT_TRUE(rules_for(s, "future_call").empty());
  EXPECT_TRUE(rules_for(s, "old_call").empty());

  // With CAP_SYS_CHROOT in the bounding set, the other chroot rule.
  auto with_chroot = oci_seccomp_from_profile(profile, amd64({"CAP_SYS_CHROOT"}));
  ASSERT_TRUE(with_chroot);
  ASSERT_EQ(rules_for(with_chroot.value(), "chroot").size(), 1u);
  EXPECT_EQ(rules_for(with_chroot.value(), "chroot")[0]["action"], "SCMP_ACT_ALLOW");
  EXPECT_TRUE(rules_for(with_chroot.value(), "socket").empty());
}

TEST(RunSeccomp, NoNewNamespacesWithoutSysAdmin) {
  json profile = json::parse(R"({"defaultAction": "SCMP_ACT_ERRNO",
    "syscalls": [{"names": ["clone", "clone3", "unshare", "read"], "action": "SCMP_ACT_ALLOW"}]})");
  auto converted = oci_seccomp_from_profile(profile, amd64());
  ASSERT_TRUE(converted);
  const json& s = converted.value();
  EXPECT_EQ(rules_for(s, "read").size(), 1u);
  auto unshare = rules_for(s, "unshare");
  ASSERT_EQ(unshare.size(), 1u);
  EXPECT_EQ(unshare[0]["action"], "SCMP_ACT_ERRNO");
  auto clone3 = rules_for(s, "clone3");
  ASSERT_EQ(clone3.size(), 1u);
  EXPECT_EQ(clone3[0]["errnoRet"], 38);  // ENOSYS: the C library falls back to clone
  auto clone = rules_for(s, "clone");
  ASSERT_EQ(clone.size(), 8u);  // allowed without a CLONE_NEW* flag, EPERM with each
  EXPECT_EQ(clone[0]["action"], "SCMP_ACT_ALLOW");
  EXPECT_EQ(clone[0]["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
  EXPECT_EQ(clone[0]["args"][0]["valueTwo"], 0);
  for (std::size_t i = 1; i < clone.size(); ++i) {
    EXPECT_EQ(clone[i]["action"], "SCMP_ACT_ERRNO");
    EXPECT_EQ(clone[i]["args"][0]["value"], clone[i]["args"][0]["valueTwo"]);
  }
  // A container with CAP_SYS_ADMIN keeps the profile's own rules.
  auto admin = oci_seccomp_from_profile(profile, amd64({"CAP_SYS_ADMIN"}));
  ASSERT_TRUE(admin);
  EXPECT_EQ(admin.value()["syscalls"].size(), 1u);
}

TEST(RunSeccomp, RefusesWhatIsNoProfile) {
  for (const char* bad : {R"([])", R"({"syscalls": []})",
                          R"({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
                              "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]})",
                          R"({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]})"}) {
    auto converted = oci_seccomp_from_profile(json::parse(bad), amd64());
    ASSERT_FALSE(converted) << bad;
    EXPECT_EQ(converted.error().kind, Error::Kind::kBadInput);
  }
}

// The profile podman ships, converted for the container on this machine.
TEST(RunSeccomp, TheContainersProfileConvertsForThisMachine) {
  auto target = seccomp_target_here(container_capabilities());
  ASSERT_FALSE(target.arch.empty());
  auto converted = default_oci_seccomp(target);
  ASSERT_TRUE(converted) << converted.error().message;
  ASSERT_TRUE(converted.value()) << "no /usr/share/containers/seccomp.json (golang-github-containers-common)";
  const json& s = *converted.value();
  EXPECT_EQ(s["defaultAction"], "SCMP_ACT_ERRNO");
  if (target.arch == "amd64") {
    EXPECT_EQ(s["architectures"], json({"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"}));
  }
  for (const char* refused : {"chroot", "bpf", "open_by_handle_at", "unshare", "clone3"}) {
    auto rules = rules_for(s, refused);
    ASSERT_FALSE(rules.empty()) << refused;
    for (const json& r : rules) EXPECT_EQ(r["action"], "SCMP_ACT_ERRNO") << refused << ": " << r.dump();
  }
  for (const char* allowed : {"read", "openat", "execve", "mount"}) {
    EXPECT_FALSE(rules_for(s, allowed).empty()) << allowed;
  }
}

}  // namespace
}  // namespace hostchanfs::mountctl
