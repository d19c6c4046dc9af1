// `hostchanfs oci-hook`: host channels for any OCI engine. runc and crun call it from a
// bundle's config.json `hooks`; podman and CRI-O call it through hooks.d
// (oci/hooks.d/hostchanfs.json) when a container carries the annotation
// io.hostchanfs.channel=<host path>:<container path>:<rw|ro>:<size>.
//
// One entry point serves both stages; the stage comes from the state's status:
//   "creating" / "created" (createRuntime) -> create the channel (or find the one this
//       container already has) and bind it into the container's mount namespace;
//   "stopped" (poststop) -> the container leaves the channel, which goes with its last
//       member (channel_member: a podman container leaves only when it is deleted).
// Containers of one pod (the same kSandboxAnnotation) share one channel: the first makes it,
// the others join it and bind it; a different spec in the same pod is refused.
// The hook is a front door like the CLI: it asks the controller, which owns every daemon
// and mount, so the hook never becomes a daemon's parent (crun waits for every child it
// adopts: a daemon forked here would hang `crun run`).
#pragma once

#include <sys/types.h>

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

#include "fs/charge.hpp"
#include "mountctl/error.hpp"
#include "mountctl/protocol.hpp"

namespace hostchanfs::mountctl {

inline constexpr std::string_view kChannelAnnotation = "io.hostchanfs.channel";
// channel (default) or writer: who pays for the channel's file data (fs/charge.hpp).
inline constexpr std::string_view kChargeAnnotation = "io.hostchanfs.charge";
// Set by podman (and CRI-O) on every container of a pod: the pod's sandbox (infra) container.
inline constexpr std::string_view kSandboxAnnotation = "io.kubernetes.cri-o.SandboxID";
// Who made the container: "libpod" for podman, "cri-o" for CRI-O.
inline constexpr std::string_view kManagerAnnotation = "io.container.manager";

enum class HookStage { kCreateRuntime, kPoststop };

// What the hook needs from the OCI state (runtime-spec "state"), read from stdin.
struct OciState {
  std::string id;
  pid_t pid = 0;  // 0 when the runtime gives none (poststop)
  std::string bundle;
  HookStage stage = HookStage::kCreateRuntime;
  std::optional<std::string> channel;  // the annotation's value; nullopt: not ours
  fs::Charge charge = fs::Charge::kChannel;  // kChargeAnnotation
  std::string sandbox_id;              // kSandboxAnnotation; "" outside a pod
  std::string manager;                 // kManagerAnnotation; "" when not set
};

// Who owns the channel of a container: its pod ("pod:<sandbox id>"), whose containers
// share one channel, or the container itself (oci_owner_id).
std::string channel_owner_id(const OciState& state);

// The member the container is in its channel (protocol.hpp): podman calls poststop at
// every stop and deletes the bundle only when it deletes the container, so a podman
// container leaves when its bundle goes; any other container leaves at its poststop.
Member channel_member(const OciState& state);

// What the hook needs from the bundle's config.json.
struct BundleConfig {
  std::string rootfs;            // absolute host path of root.path
  std::optional<uid_t> root_uid;  // host ids container root maps to (user namespace only)
  std::optional<gid_t> root_gid;
};

// Parse the state JSON. Errors are kBadInput, one line.
Expected<OciState> parse_oci_state(std::string_view json_text);

// Read <bundle>/config.json: root.path (relative to the bundle unless absolute) and the
// host ids of container root from linux.uidMappings / gidMappings.
Expected<BundleConfig> read_bundle_config(const std::string& bundle);

// The host id that container id 0 maps to through an OCI idmapping array
// ([{containerID, hostID, size}, ...]); nullopt when no entry covers 0 or the array is
// missing/empty.
std::optional<std::uint32_t> host_id_of_container_root(const nlohmann::json& mappings);

// The controller's owner id for the channel of OCI container `container_id`.
std::string oci_owner_id(std::string_view container_id);

// The whole hook: state JSON in, channel created/exposed or removed. Success also when the
// container has no annotation (nothing to do). Talks to the controller of `run_dir`. A
// channel it makes must be below the hook channel root of the configuration at
// `config_path` (config.hpp; nothing is made otherwise); one the container already owns
// (`hostchanfs run` makes its own) is bound wherever it is.
Expected<void> run_oci_hook(std::string_view state_json, const std::string& run_dir,
                            const std::string& config_path);

// `hostchanfs oci-hook [--run-dir DIR] [--config FILE]` (cli/ fills the request from the
// flags).
struct OciHookRequest {
  std::string run_dir;      // the controller's
  std::string config_path;  // the operator's configuration (config.hpp)
};

// The whole command: reads the state on stdin and runs the hook; a failure is printed as
// the CLI prints it ("hostchanfs: ..."), so that a failed container start says what
// `mount` would. Returns the exit status.
int oci_hook_main(const OciHookRequest& request);

}  // namespace hostchanfs::mountctl
