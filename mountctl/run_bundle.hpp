// The OCI bundle of `hostchanfs run`'s container: its directory and its config.json.
//
// The profile is the OCI runtimes' own default, what `runc spec` writes, and not less
// (tests/mountctl/run_bundle_test.cpp holds it against `runc spec` and `crun spec`):
//   - namespaces: mount, pid, ipc, uts, network (loopback only), and cgroup; a user
//     namespace unless the caller opts out (container ids 0..65535 map to an
//     unprivileged host range, kUserNsHostId...);
//   - capabilities: AUDIT_WRITE, KILL and NET_BIND_SERVICE in the bounding, effective,
//     permitted and ambient sets, none inheritable; noNewPrivileges;
//   - runc's masked paths (/proc/kcore, /proc/keys, /sys/firmware, ...) and read-only
//     paths (/proc/sys, /proc/sysrq-trigger, ...);
//   - devices: every device denied in the device cgroup, and only the runtime's defaults
//     made (null, zero, full, random, urandom, tty, ptmx/pts; shm, mqueue);
//   - mounts: its own /proc, a /dev tmpfs, /sys and /sys/fs/cgroup read-only, and a /tmp
//     and a /run tmpfs of its own (where a host keeps its sockets);
//   - the root read-only; seccomp (run_seccomp.hpp) when there is a profile;
//   - linux.resources.memory.limit with --memory.
// The channel enters through the engines' own path: the annotation io.hostchanfs.channel
// and this binary's `oci-hook` at createRuntime (bind) and poststop (remove).
#pragma once

#include <sys/types.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "fs/charge.hpp"
#include "mountctl/error.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::mountctl {

// The host ids container id 0 maps to (uid and gid alike), and how many follow: inside
// systemd's range for containers (0x00080000-0x6FFFFFFF), far above the ranges
// /etc/subuid hands to users, so no host user owns them.
inline constexpr std::uint32_t kUserNsHostId = 0x60000000;
inline constexpr std::uint32_t kUserNsSize = 65536;

struct ContainerConfig {
  std::vector<std::string> args;
  uid_t uid = 0;  // in the container
  gid_t gid = 0;
  std::string rootfs;                     // absolute path of the root
  bool user_namespace = true;             // map ids to kUserNsHostId...
  std::optional<std::uint64_t> memory_limit;
  std::optional<nlohmann::json> seccomp;  // linux.seccomp
  std::string channel;                    // the annotation io.hostchanfs.channel
  fs::Charge charge = fs::Charge::kChannel;  // the annotation io.hostchanfs.charge
  std::string hook_program;               // this binary, which runs `oci-hook`
  std::vector<std::string> hook_args;     // after "oci-hook" (--run-dir DIR)
  std::string hooks_log;                  // where crun writes the hooks' stderr
};

// The capabilities the container keeps, in every set but the inheritable one.
const std::vector<std::string>& container_capabilities();

// The container's PATH (runc's default), where a CMD without a slash is looked up.
const std::vector<std::string>& container_search_path();

// Where the config mounts something over the root: the root must have these directories
// before the runtime runs (inside a user namespace it cannot make them itself).
const std::vector<std::string>& config_mount_points();

nlohmann::json make_oci_config(const ContainerConfig& config);

// The directory that holds run's bundles: "<run dir>-run" (/run/hostchanfs-run). Not in
// the run dir itself: a runtime in a user namespace must reach the rootfs through it, and
// the run dir is root's alone.
std::string bundles_dir(const std::string& run_dir);

// <bundles dir>/<id>/: config.json, rootfs/ (the root's mount point), pid (the runtime's
// pid file), hooks.log. 0700, owned by the host ids container root maps to when there is
// a user namespace (the runtime reaches the rootfs from inside it), root's otherwise.
// Removed when this object goes.
class Bundle {
 public:
  // The bundles dir is made if missing (0711) and must be root's and writable by root
  // alone, not a symlink; the bundle itself must not exist yet.
  static Expected<Bundle> make(const std::string& bundles_dir, const std::string& id,
                               std::optional<uid_t> owner);
  Bundle(Bundle&& o) noexcept : dir_(std::exchange(o.dir_, {})), fd_(std::move(o.fd_)) {}
  Bundle& operator=(Bundle&&) = delete;
  Bundle(const Bundle&) = delete;
  Bundle& operator=(const Bundle&) = delete;
  ~Bundle();

  const std::string& dir() const noexcept { return dir_; }
  std::string rootfs() const { return dir_ + "/rootfs"; }
  std::string pid_file() const { return dir_ + "/pid"; }
  std::string hooks_log() const { return dir_ + "/hooks.log"; }
  Expected<void> write_config(const nlohmann::json& config);

 private:
  Bundle(std::string dir, UniqueFd fd) : dir_(std::move(dir)), fd_(std::move(fd)) {}
  std::string dir_;
  UniqueFd fd_;
};

// Removes what Bundle made at `dir` (the guard of a run that died calls it too): detaches
// a mount left at rootfs/, unlinks the bundle's files, removes the two directories. It
// never descends below rootfs/, whatever is there.
void remove_bundle(const std::string& dir) noexcept;

}  // namespace hostchanfs::mountctl
