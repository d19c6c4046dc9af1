// The fixture of the `hostchanfs run` tests: each test runs on one OCI runtime, its
// parameter ("runc", "crun"), with a ControllerWorld of its own (harness.hpp). For crun the
// process first gets a mount namespace of its own with a cgroup layout crun accepts
// (tests/support/crun_cgroups.hpp; given back when the process ends). TearDown checks
// that nothing of the run is left: no mount under the work dir (the channel, the root of
// a bundle), no process naming it (a daemon, a container, a guard), no bundle, no
// container the runtime still knows.
#pragma once

#include <sched.h>
#include <sys/mount.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/mountctl/harness.hpp"
#include "tests/oci/oci_support.hpp"
#include "tests/support/crun_cgroups.hpp"

namespace hostchanfs::testing {

// crun's cgroups for this process, made once, given back by gtest's environment.
class CrunReadyProcess : public ::testing::Environment {
 public:
  static void prepare() {
    static bool registered = [] {
      ::testing::AddGlobalTestEnvironment(new CrunReadyProcess);
      return true;
    }();
    (void)registered;
    if (state()) return;
    if (::unshare(CLONE_NEWNS) < 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) {
      throw std::runtime_error("a mount namespace for crun's cgroups: " + errno_text(errno));
    }
    auto s = std::make_unique<State>();
    s->cgroups.emplace(s->dir.path());
    state() = std::move(s);
  }
  void TearDown() override { state().reset(); }

 private:
  struct State {
    TempDir dir{"hostchanfs-crun-cgroups"};
    std::optional<CrunCgroups> cgroups;
    ~State() { cgroups.reset(); }
  };
  static std::unique_ptr<State>& state() {
    static std::unique_ptr<State> s;
    return s;
  }
};

class RunFixture : public ControllerFixture, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "crun") CrunReadyProcess::prepare();
    ControllerFixture::SetUp();
  }
  void TearDown() override {
    if (!world_) return;
    std::string work = world_->work();
    // Nothing of the channel or the bundle is left once `run` ended, before the
    // controller stops.
    EXPECT_EQ(mounts_under(work), std::vector<std::string>{}) << world_->controller_log();
    // A daemon whose mount was still in use when `run` ended (lazily detached) exits once
    // its last user is gone, and a guard once it has cleaned up: wait, do not race them.
    std::vector<pid_t> left;
    EXPECT_TRUE(eventually([&] {
      left.clear();
      for (pid_t pid : processes_naming(work)) {
        if (pid != world_->controller_pid()) left.push_back(pid);
      }
      return left.empty();
    })) << "a daemon, a container process or a guard is left: " << ::testing::PrintToString(left);
    std::error_code ec;
    EXPECT_TRUE(std::filesystem::is_empty(world_->run_dir() + "-run", ec) || ec) << "a bundle is left";
    for (const auto& id : containers_of_runs()) ADD_FAILURE() << GetParam() << " still knows container " << id;
    EXPECT_TRUE(world_->stop_controller());
    world_.reset();
  }

  // `hostchanfs run --runtime <param> ARGS...`
  std::vector<std::string> run_args(const std::vector<std::string>& args) const {
    std::vector<std::string> all = {"run", "--runtime", GetParam()};
    all.insert(all.end(), args.begin(), args.end());
    return all;
  }
  CliResult run(const std::vector<std::string>& args) { return hostchanfs(run_args(args)); }

  // Waits for the channel to be mounted at `host` (the container is then being made).
  void await_channel(const std::string& host, Cli& running) {
    ASSERT_TRUE(running.eventually([&] { return is_fuse_mount(host); })) << running.err_so_far();
  }

  // The containers the runtime knows whose bundle is one of this test's.
  std::vector<std::string> containers_of_runs() const {
    std::vector<std::string> ids;
    auto listed = oci::run_command({GetParam(), "list", "--format", "json"});
    nlohmann::json all = nlohmann::json::parse(listed.out, nullptr, false);
    if (!all.is_array()) return ids;
    for (const auto& c : all) {
      if (c.value("bundle", "").rfind(world_->run_dir() + "-run/", 0) == 0) ids.push_back(c.value("id", ""));
    }
    return ids;
  }
};

#define HOSTCHANFS_RUN_ON_EVERY_RUNTIME(fixture)                                 \
  INSTANTIATE_TEST_SUITE_P(Runtimes, fixture, ::testing::Values("runc", "crun"), \
                           ::hostchanfs::testing::oci::runtime_name)

}  // namespace hostchanfs::testing
