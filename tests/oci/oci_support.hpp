// Test scaffolding for the OCI tests: commands run as children that die with the test,
// a private host (mount namespace, cgroup layout crun accepts, a test-local controller),
// busybox bundles whose config.json carries the shipped hooks, and runc/crun containers
// and podman runs that are deleted by id even when a test fails halfway.
#pragma once

#include <sys/types.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mountctl/protocol.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/crun_cgroups.hpp"
#include "tests/support/files.hpp"
#include "tests/support/temp_dir.hpp"

namespace hostchanfs::testing::oci {

namespace stdfs = std::filesystem;

// ---------------------------------------------------------------------------------------
// Commands.

struct CommandResult {
  int exit_code = -1;  // 128 + signal when killed by one
  std::string out;
  std::string err;
  std::string describe() const;  // for failure messages
};

struct CommandOptions {
  std::string stdin_text;
  std::vector<std::string> env;  // extra NAME=value entries
  std::string cwd;
  // When set, stdout and stderr go to this file instead of being captured: a runtime's
  // `create` hands its stdio to the container process, which outlives the command.
  std::string output_file;
};

// Run argv[0] (searched in PATH) as a child that dies with us (ChildProcess), wait for it.
CommandResult run_command(const std::vector<std::string>& argv, const CommandOptions& options = {});

// ---------------------------------------------------------------------------------------
// Files (TempDir and read_file are the tests' own, tests/support).

using testing::read_file;
using testing::TempDir;
// The same, with a path.
inline std::string read_file(const stdfs::path& path) { return testing::read_file(path.string()); }
void write_file(const stdfs::path& path, const std::string& text);
bool is_fuse_mount(const stdfs::path& path);
// True once `pid` is gone (or a zombie), waiting a bounded while for it.
bool wait_process_gone(pid_t pid);
// True once `condition` holds, asking it again for a bounded while (what another process
// does on its own time: the controller sees a bundle go after `podman rm` returns).
bool eventually(const std::function<bool()>& condition);

// ---------------------------------------------------------------------------------------
// The private host every OCI test runs in (once per process, set up on first use):
//  - its own mount namespace (/ rprivate), so every mount of the test dies with it;
//  - a child subreaper, so containers and the controller become our children and die
//    with us (ctest kills the process tree of a test that times out);
//  - a cgroup layout crun accepts (tests/support/crun_cgroups.hpp), given back at exit;
//  - HOSTCHANFS_RUN_DIR: a test-local controller, stopped at exit (found by its run dir
//    when a hook started it);
//  - HOSTCHANFS_CONFIG for the hook: a configuration that lets it make channels in /tmp,
//    where the tests' temporary directories are.
class PrivateHost {
 public:
  static PrivateHost& get();
  stdfs::path dir() const { return dir_.path(); }
  const std::string& run_dir() const { return run_dir_; }
  // The environment the hook needs to find this test's controller.
  std::vector<std::string> hook_env() const;
  // Start this process's controller as our child (it dies with us). Without it, the
  // first hook starts one on demand, detached.
  void start_controller();
  void shutdown();  // gtest's environment calls this after the last test

 private:
  PrivateHost();
  void stop_controller();
  std::vector<pid_t> controllers_of_run_dir() const;
  TempDir dir_;
  std::string run_dir_;
  std::string config_;
  std::optional<CrunCgroups> cgroups_;
  ChildProcess controller_;
  bool shut_down_ = false;
};

// The controller's view of the channel at `host_path` (nullopt: none).
std::optional<mountctl::ChannelInfo> channel_at(const stdfs::path& host_path);

// ---------------------------------------------------------------------------------------
// Bundles and containers.

// A busybox-static tree: /bin/busybox and one relative symlink per applet.
void make_busybox_rootfs(const stdfs::path& rootfs);

// Copy a dynamically linked host program and its libraries into a rootfs (the seed's dd
// output is GNU coreutils', which busybox's dd does not reproduce).
void add_host_program(const stdfs::path& rootfs, const std::string& program);

struct BundleOptions {
  std::string runtime = "runc";            // whose `spec` generates config.json
  std::vector<std::string> args;          // the container process
  std::optional<std::string> channel;     // io.hostchanfs.channel; nullopt: none
  bool with_hooks = true;                 // hooks from oci/runc-hooks-example.json
  bool user_namespace = false;            // map container root to kUserNsHostId
};
inline constexpr unsigned kUserNsHostId = 100000;

// <dir>/rootfs + <dir>/config.json.
nlohmann::json make_bundle(const stdfs::path& dir, const BundleOptions& options);

// The name of a test parameterised by runtime: its runtime ("runc", "crun").
inline std::string runtime_name(const ::testing::TestParamInfo<std::string>& runtime) {
  return runtime.param;
}

// A runc or crun container, deleted (by id, --force) when this object goes.
class OciContainer {
 public:
  OciContainer(std::string runtime, stdfs::path bundle, std::string id);
  OciContainer(const OciContainer&) = delete;
  OciContainer& operator=(const OciContainer&) = delete;
  ~OciContainer();

  CommandResult create();
  CommandResult start();
  CommandResult remove();  // `delete` (runs poststop)
  std::string status();    // "" when the runtime does not know the container
  pid_t pid();             // the container process, from the runtime's state
  bool wait_stopped();
  std::string output() const;  // the container's stdout and stderr
  const std::string& id() const { return id_; }

 private:
  std::vector<std::string> base() const;
  nlohmann::json state();  // `<runtime> state`; an empty object when it fails
  std::string runtime_;
  stdfs::path bundle_;
  std::string id_;
  stdfs::path state_root_;
};

// Podman, rootful, with a test-local containers.conf, storage and hooks.d (made from the
// shipped oci/hooks.d/hostchanfs.json). run() uses --rm; leftovers are removed by name.
// Pods need cgroups, which crun refuses on a hybrid host with podman's cgroupfs manager: a
// Podman for pods runs runc, and gives back the libpod_parent cgroups podman made.
class Podman {
 public:
  enum class Cgroups { kNone, kForPods };
  explicit Podman(const stdfs::path& dir, Cgroups cgroups = Cgroups::kNone);
  Podman(const Podman&) = delete;
  Podman& operator=(const Podman&) = delete;
  ~Podman();
  CommandResult run(const std::string& name, const std::string& rootfs,
                    const std::vector<std::string>& extra_args,
                    const std::vector<std::string>& command);
  CommandResult podman(const std::vector<std::string>& args);
  void adopt(const std::string& name) { names_.push_back(name); }  // removed at the end
  void adopt_pod(const std::string& name) { pods_.push_back(name); }  // removed at the end
  // An image `name` in this storage, made from a rootfs (no registry is reachable).
  void import_image(const stdfs::path& rootfs, const std::string& name);

 private:
  stdfs::path dir_;
  Cgroups cgroups_;
  std::vector<std::string> names_, pods_;
  std::vector<stdfs::path> cgroup_parents_before_;
};

}  // namespace hostchanfs::testing::oci
