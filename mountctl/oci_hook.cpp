#include "mountctl/oci_hook.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <limits>

#include <fmt/format.h>

#include "mountctl/client.hpp"
#include "mountctl/config.hpp"
#include "sys/errno_text.hpp"
#include "sys/log.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::mountctl {
namespace {

using nlohmann::json;

// A state is a few hundred bytes; anything far larger is not one, and must not make the
// hook (which runs as root inside every container start) eat memory.
constexpr std::size_t kMaxStateBytes = 1 << 20;

const char* const kRunAsHook =
    "run it as an OCI hook (createRuntime and poststop), which receives the container "
    "state on stdin";

Error bad_state(const std::string& why) {
  return Error::bad_input("stdin is not an OCI container state (" + why + "): " + kRunAsHook);
}

Expected<std::string> read_all_stdin() {
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n == 0) return text;
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::failure("cannot read the OCI state from stdin: " + errno_text(errno));
    }
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > kMaxStateBytes) return bad_state("more than 1 MiB");
  }
}

Expected<HookStage> stage_of(const std::string& status) {
  // runc reports "creating" at createRuntime, crun and podman "created"; every runtime
  // reports "stopped" at poststop.
  if (status == "creating" || status == "created") return HookStage::kCreateRuntime;
  if (status == "stopped") return HookStage::kPoststop;
  return Error::bad_input("container status '" + status +
                          "' is no stage this hook serves: register it for createRuntime and "
                          "poststop only");
}

// A process that can still have a mount namespace we can enter: alive and not a zombie
// (a zombie's /proc/<pid>/ns links are gone).
bool process_is_running(pid_t pid) {
  std::string ns = "/proc/" + std::to_string(pid) + "/ns/mnt";
  UniqueFd fd(::open(ns.c_str(), O_RDONLY | O_CLOEXEC));
  return static_cast<bool>(fd);
}

// The container's rootfs as a path inside its own mount namespace: runc and crun run
// createRuntime before pivot_root, when the rootfs is still at its host path; if the
// process has already pivoted (its root is the rootfs), the rootfs is "/".
std::string rootfs_in_container_namespace(pid_t pid, const std::string& host_rootfs) {
  struct stat proc_root {}, rootfs {};
  std::string root_link = "/proc/" + std::to_string(pid) + "/root";
  if (::stat(root_link.c_str(), &proc_root) == 0 && ::stat(host_rootfs.c_str(), &rootfs) == 0 &&
      proc_root.st_dev == rootfs.st_dev && proc_root.st_ino == rootfs.st_ino) {
    return "/";
  }
  return host_rootfs;
}

// Poststop: the container leaves its channel, which goes with its last member. A channel
// someone else made at the same host path (by hand, or another container) is not ours.
Expected<void> leave_channel(const OciState& state, const ChannelSpec& spec,
                             const std::string& run_dir) {
  auto log = log::get("oci-hook");
  // A killed controller's channels are still ours to remove: take them over.
  auto client = ControllerClient::connect_if_channels(run_dir);
  if (!client) {
    if (client.error().kind == Error::Kind::kNotFound) return success();  // nothing runs
    return client.error();
  }
  HC_TRY(outcome, client.value().leave(spec.host_path, channel_owner_id(state), oci_owner_id(state.id)));
  switch (outcome) {
    case LeaveOutcome::kNotOurs:
      log->warn("container {}: channel {} belongs to another owner, not to this container: left in place",
                state.id, spec.host_path);
      break;
    case LeaveOutcome::kRemoved: log->debug("container {}: removed channel {}", state.id, spec.host_path); break;
    case LeaveOutcome::kLeft:
    case LeaveOutcome::kKept:
    case LeaveOutcome::kNoChannel: break;  // poststop may run more than once
  }
  return success();
}

// Whether this container already owns this very channel (made by `hostchanfs run` before
// it started the runtime, or by an earlier createRuntime).
bool owns_channel(const OciState& state, const ChannelSpec& spec, const std::string& run_dir) {
  auto client = ControllerClient::connect_if_channels(run_dir);
  auto channels = client ? client.value().list() : Expected<std::vector<ChannelInfo>>(client.error());
  if (!channels) return false;
  for (const ChannelInfo& channel : channels.value()) {
    if (channel.spec.host_path == spec.host_path) {
      return channel.owner_id == channel_owner_id(state) && channel.spec == spec;
    }
  }
  return false;
}

// The annotation is the spec author's choice: a channel the hook makes must be below the
// operator's root (config.hpp). One this container already owns may be bound wherever it
// is, and is then only bound (true): nothing is made outside the root, even if it went
// meanwhile.
Expected<bool> bind_only(const OciState& state, const ChannelSpec& spec,
                         const std::string& run_dir, const std::string& config_path) {
  HC_TRY(config, read_config(config_path));
  const std::string& root = config.hook_channel_root;
  if (path_is_within(spec.host_path, root) && spec.host_path != root) return false;
  if (owns_channel(state, spec, run_dir)) return true;
  return Error::bad_input(fmt::format(
      "container {}: host path {} is outside {}: channels made through the annotation {} must "
      "be below it (the operator sets \"hook_channel_root\" in {})",
      state.id, spec.host_path, root, kChannelAnnotation, config_path));
}

Expected<void> create_channel(const OciState& state, const ChannelSpec& spec,
                              const std::string& run_dir, const std::string& config_path) {
  auto log = log::get("oci-hook");
  if (state.bundle.empty()) return bad_state("no 'bundle' at createRuntime");
  if (state.pid <= 0) return bad_state("no 'pid' at createRuntime");
  auto config = read_bundle_config(state.bundle);
  if (!config) return config.error();
  // Checked before anything is made, so a dead container leaves nothing behind.
  if (!process_is_running(state.pid)) {
    return Error::bad_input("container " + state.id + ": its process " +
                            std::to_string(state.pid) +
                            " is not running (it ended before the hook ran): no channel was "
                            "created");
  }
  HC_TRY(only_bind, bind_only(state, spec, run_dir, config_path));

  ChannelOptions options;
  options.uid = config.value().root_uid;
  options.gid = config.value().root_gid;
  options.charge = state.charge;
  auto client = only_bind ? ControllerClient::connect_existing(run_dir) : ControllerClient::connect(run_dir);
  if (!client) return client.error();
  Expected<CreateResult> created = CreateResult{{}, true};
  if (!only_bind) created = client.value().join(spec, options, channel_owner_id(state), channel_member(state));
  if (!created) return created.error();

  auto exposed = client.value().expose(
      spec.host_path, state.pid, rootfs_in_container_namespace(state.pid, config.value().rootfs));
  if (!exposed) {
    // All or nothing: a channel this call made goes again; one that existed before (an
    // earlier start of the same container) stays, as its data belongs to that container.
    if (!created.value().existed) {
      auto undone = client.value().remove(spec.host_path);
      if (!undone) log->error("container {}: could not undo channel {}: {}", state.id,
                              spec.host_path, undone.error().message);
    }
    return exposed.error();
  }
  log->debug("container {}: channel {} {} at {} (pid {})", state.id, spec.host_path,
             created.value().existed ? "re-bound" : "created and bound", spec.container_path,
             state.pid);
  return success();
}

}  // namespace

std::string oci_owner_id(std::string_view container_id) {
  return "oci:" + std::string(container_id);
}

std::string channel_owner_id(const OciState& state) {
  return state.sandbox_id.empty() ? oci_owner_id(state.id) : "pod:" + state.sandbox_id;
}

Member channel_member(const OciState& state) {
  return Member{oci_owner_id(state.id), state.manager == "libpod" ? state.bundle : std::string()};
}

std::optional<std::uint32_t> host_id_of_container_root(const json& mappings) {
  if (!mappings.is_array()) return std::nullopt;
  for (const json& m : mappings) {
    if (!m.is_object()) continue;
    auto container_id = m.value("containerID", std::uint64_t{0});
    auto host_id = m.value("hostID", std::uint64_t{0});
    auto size = m.value("size", std::uint64_t{0});
    if (container_id == 0 && size > 0) return static_cast<std::uint32_t>(host_id);
  }
  return std::nullopt;
}

Expected<OciState> parse_oci_state(std::string_view json_text) {
  json doc;
  try {
    doc = json::parse(json_text);
  } catch (const json::parse_error& e) {
    return bad_state("not JSON, error at byte " + std::to_string(e.byte));
  }
  if (!doc.is_object()) return bad_state("not a JSON object");
  auto string_field = [&](const char* name) -> std::optional<std::string> {
    auto it = doc.find(name);
    if (it == doc.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  auto id = string_field("id");
  auto status = string_field("status");
  if (!id || id->empty()) return bad_state("no 'id'");
  if (!status) return bad_state("no 'status'");

  OciState state;
  state.id = *id;
  state.bundle = string_field("bundle").value_or("");
  if (auto it = doc.find("pid"); it != doc.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<std::int64_t>() < 0 ||
        it->get<std::int64_t>() > std::numeric_limits<pid_t>::max()) {
      return bad_state("'pid' is not a process id");
    }
    state.pid = static_cast<pid_t>(it->get<std::int64_t>());
  }
  if (auto annotations = doc.find("annotations");
      annotations != doc.end() && annotations->is_object()) {
    if (auto value = annotations->find(std::string(kChannelAnnotation));
        value != annotations->end()) {
      if (!value->is_string()) {
        return Error::bad_input("annotation " + std::string(kChannelAnnotation) +
                                " is not a string: give it <host path>:<container path>:<rw|ro>:<size>");
      }
      state.channel = value->get<std::string>();
    }
    if (auto value = annotations->find(std::string(kChargeAnnotation)); value != annotations->end()) {
      auto charge = value->is_string() ? fs::parse_charge(value->get<std::string>()) : std::nullopt;
      if (!charge) {
        return Error::bad_input("annotation " + std::string(kChargeAnnotation) +
                                " is not channel or writer: give io.hostchanfs.charge=channel or =writer");
      }
      state.charge = *charge;
    }
    auto text = [&](std::string_view key) {
      auto it = annotations->find(std::string(key));
      return it != annotations->end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    state.sandbox_id = text(kSandboxAnnotation);
    state.manager = text(kManagerAnnotation);
    // An engine's container id (podman's and CRI-O's are 64 hex digits): it becomes an
    // owner id, so nothing else is let through.
    if (state.sandbox_id.size() > 128 ||
        state.sandbox_id.find_first_not_of("0123456789abcdef") != std::string::npos) {
      return Error::bad_input("annotation " + std::string(kSandboxAnnotation) +
                              " is not a container id (hex digits): it must name the pod's "
                              "sandbox container, as the engine sets it");
    }
  }
  // The status matters only to containers with a channel: others are left alone, whatever
  // stage the hook was registered for.
  if (state.channel) {
    auto stage = stage_of(*status);
    if (!stage) return stage.error();
    state.stage = stage.value();
  }
  return state;
}

Expected<BundleConfig> read_bundle_config(const std::string& bundle) {
  if (bundle.empty() || bundle.front() != '/') {
    return Error::bad_input("bundle '" + bundle + "' is not an absolute path: " + kRunAsHook);
  }
  std::string path = bundle + "/config.json";
  std::ifstream in(path);
  if (!in) {
    return Error::bad_input("cannot read " + path + " (" + errno_text(errno) +
                            "): the state's bundle must hold the container's config.json");
  }
  json config;
  try {
    config = json::parse(in);
  } catch (const json::exception& e) {
    return Error::bad_input(path + " is not valid JSON (" + e.what() + ")");
  }
  const json* root_path = nullptr;
  if (auto root = config.find("root"); root != config.end() && root->is_object()) {
    if (auto p = root->find("path"); p != root->end() && p->is_string()) root_path = &*p;
  }
  if (!root_path || root_path->get<std::string>().empty()) {
    return Error::bad_input(path + " has no root.path: the channel needs the container's rootfs");
  }
  BundleConfig result;
  std::string rootfs = root_path->get<std::string>();
  result.rootfs = clean_path(rootfs.front() == '/' ? rootfs : bundle + "/" + rootfs);
  if (auto linux_section = config.find("linux");
      linux_section != config.end() && linux_section->is_object()) {
    if (auto m = linux_section->find("uidMappings"); m != linux_section->end()) {
      result.root_uid = host_id_of_container_root(*m);
    }
    if (auto m = linux_section->find("gidMappings"); m != linux_section->end()) {
      result.root_gid = host_id_of_container_root(*m);
    }
  }
  return result;
}

Expected<void> run_oci_hook(std::string_view state_json, const std::string& run_dir,
                            const std::string& config_path) {
  auto state = parse_oci_state(state_json);
  if (!state) return state.error();
  if (!state.value().channel) return success();  // not a container with a channel
  auto spec = parse_spec(*state.value().channel);
  if (!spec) return spec.error();
  if (state.value().stage == HookStage::kPoststop) {
    return leave_channel(state.value(), spec.value(), run_dir);
  }
  return create_channel(state.value(), spec.value(), run_dir, config_path);
}

int oci_hook_main(const OciHookRequest& request) {
  auto input = read_all_stdin();
  auto done = input ? run_oci_hook(input.value(), request.run_dir, request.config_path)
                    : Expected<void>(input.error());
  if (!done) return report(done.error());
  return kExitOk;
}

}  // namespace hostchanfs::mountctl
