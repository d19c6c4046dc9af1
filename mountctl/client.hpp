// The controller's client: what every front door (the CLI's mount/umount/ls/run and the
// OCI hook) calls. One code path: a front door parses the spec (spec.hpp), connects to the
// controller (which it starts on demand), and asks it to create, expose or remove a
// channel. The controller owns every daemon, mount and registry entry; a front door never
// becomes the parent of a channel daemon.
//
// Stable API: later changes only add to this header.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "mountctl/error.hpp"
#include "mountctl/protocol.hpp"
#include "mountctl/run_dir.hpp"
#include "mountctl/spec.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::mountctl {

// One connection to the controller's root-only socket (JSON lines, one request and one
// answer at a time). Movable, not copyable.
class ControllerClient {
 public:
  // Connect to the controller of `run_dir`, starting it (detached: not our child) when
  // nothing answers, and wait until it does. The controller is `$HOSTCHANFS_SELF controller`
  // when that is set (a program linking this library that is not hostchanfs), otherwise
  // this very executable (/proc/self/exe).
  static Expected<ControllerClient> connect(const std::string& run_dir = default_run_dir());
  // Connect only; kNotFound when no controller is running (ls uses this: it starts none).
  static Expected<ControllerClient> connect_existing(
      const std::string& run_dir = default_run_dir());
  // For requests about existing channels (umount, ls, the hook's poststop): a running
  // controller, or — when a killed one left channels in the registry — a new one, which
  // takes them over. kNotFound when none runs and the registry is empty.
  static Expected<ControllerClient> connect_if_channels(
      const std::string& run_dir = default_run_dir());

  // Create the channel: host path (must not exist; parents are made), store memory,
  // FUSE mount, daemon, registry entry. All or nothing.
  Expected<CreateResult> create(const ChannelSpec& spec, const ChannelOptions& options,
                                const Owner& owner);
  // Create the channel for `owner_id` with `member` in it, or join the one `owner_id`
  // already has at the spec's host path with the same spec (existed: true). kBadInput when
  // that channel has another spec, or another owner.
  Expected<CreateResult> join(const ChannelSpec& spec, const ChannelOptions& options,
                              const std::string& owner_id, const Member& member);
  // `member_id` leaves the channel at `host_path` if `owner_id` owns it (LeaveRequest).
  Expected<LeaveOutcome> leave(const std::string& host_path, const std::string& owner_id,
                               const std::string& member_id);
  // Bind the channel at its container path (with its mode) inside the mount namespace
  // of `pid`, resolving the path under `rootfs` (a path in that namespace) — the
  // controller calls expose_into() (expose.hpp).
  Expected<void> expose(const std::string& host_path, pid_t pid, const std::string& rootfs);
  // Unmount (lazily if busy), stop the daemon, remove the host path and the registry
  // entry. kNotFound when there is no such channel.
  Expected<void> remove(const std::string& host_path);
  Expected<std::vector<ChannelInfo>> list();
  // The Prometheus text exposition of every channel (mountctl/metrics.hpp).
  Expected<std::string> metrics();
  // Remove the channel at `host_path` only if `owner_id` owns it: a channel someone else
  // made at the same path is not ours to take away.
  enum class OwnedRemoval { kRemoved, kNoChannel, kNotOurs };
  Expected<OwnedRemoval> remove_if_owned(const std::string& host_path, const std::string& owner_id);

  // The connection, for poll(2): the controller never writes unasked, so between requests
  // a readable or hung-up descriptor means that it has gone.
  int descriptor() const noexcept { return sock_.get(); }

  ControllerClient(ControllerClient&&) noexcept = default;
  ControllerClient& operator=(ControllerClient&&) noexcept = default;
  ControllerClient(const ControllerClient&) = delete;
  ControllerClient& operator=(const ControllerClient&) = delete;
  ~ControllerClient() = default;

 private:
  ControllerClient(UniqueFd sock, std::string run_dir)
      : sock_(std::move(sock)), run_dir_(std::move(run_dir)) {}
  // Sends `request`, reads its answer.
  template <class R>
  Expected<typename R::Answer> call(const R& request);
  UniqueFd sock_;
  std::string run_dir_;
  std::string pending_;  // bytes read past the last answer's newline
};

}  // namespace hostchanfs::mountctl
