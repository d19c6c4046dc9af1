// One channel on the host, as the controller owns it: the host path (and the parents it
// made), the store memory, the FUSE connection, the mount and the daemon that serves it.
// Its registry record (the JSON a restarted controller reads back) is in registry.hpp.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "mountctl/error.hpp"
#include "mountctl/protocol.hpp"
#include "mountctl/spec.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::mountctl {

enum class ChannelState { kRunning, kFailed };

// "running", "failed": as `ls` shows it and the registry records it.
const char* state_name(ChannelState state);

struct Channel {
  ChannelSpec spec;
  std::string owner_id;
  std::optional<pid_t> owner_pid;
  uid_t uid = 0;
  gid_t gid = 0;
  std::uint64_t max_inodes = 0;
  // Parents of the host path this channel made (outermost first): removed with it.
  std::vector<std::string> created_dirs;
  pid_t daemon_pid = 0;
  ChannelState state = ChannelState::kRunning;

  UniqueFd daemon_pidfd;
  UniqueFd owner_pidfd;
  // Kept for a daemon restart: the FUSE connection and the store's memory outlive the
  // daemon as long as the controller holds them.
  UniqueFd fuse_fd, meta_fd, data_fd;

  ChannelInfo info() const;  // with usage from the store's header while we hold its memfd
};

// Make a channel: host path (+ parents), memfds, /dev/fuse, mount(2), the daemon, ready.
// All or nothing: a failure undoes every step that was done. The host path must not
// exist (kBadInput otherwise).
Expected<Channel> start_channel(const ChannelSpec& spec, const ChannelOptions& options,
                                const Owner& owner);

// Unmount (lazily if busy), stop the daemon, remove the host path and the parents the
// channel made. Best effort: every step runs even when an earlier one failed; the first
// failure is returned. When the mount was busy the daemon keeps serving the detached
// mount until its last user goes: channel.daemon_pidfd is then still set (stop_lingering
// ends it early).
Expected<void> stop_channel(Channel& channel);
// Reap a daemon that exited after a lazy unmount, or (force) stop it now.
void stop_lingering(pid_t pid, int pidfd, bool force);

}  // namespace hostchanfs::mountctl
