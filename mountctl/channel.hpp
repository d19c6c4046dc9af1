// One channel on the host, as the controller owns it: the host path (and the parents it
// made), the store memory, the FUSE connection, the mount and the daemon that serves it.
// Its registry record (the JSON a restarted controller reads back) is in registry.hpp; its
// place on the host, made and removed by descriptor, in host_path.hpp.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "mountctl/error.hpp"
#include "mountctl/host_path.hpp"
#include "mountctl/protocol.hpp"
#include "mountctl/spec.hpp"
#include "sys/dirs.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::mountctl {

enum class ChannelState { kRunning, kFailed };

// "running", "failed": as `ls` shows it and the registry records it.
const char* state_name(ChannelState state);

// Who holds a channel's descriptors besides the controller, and at which numbers in its
// own descriptor table: a replacement controller takes them back from it (pidfd_getfd).
// Today that is the daemon, which gets them at fixed numbers (kDaemonFds); a keeper process
// that outlives daemons can take its place without changing the record.
struct DescriptorHolder {
  pid_t pid = 0;
  int fuse = -1, meta = -1, data = -1;
};
inline constexpr DescriptorHolder kDaemonFds{0, 3, 4, 5};
// Where a daemon gets the channel's request counters (fs/metrics.hpp), and where a
// replacement controller looks for them in the daemon (none there: no request metrics).
inline constexpr int kDaemonMetricsFd = 7;

// A container in a channel (protocol.hpp: Member), with the identity of its bundle
// directory when it leaves only as that goes (bundle_watch.hpp).
struct ChannelMember {
  Member who;
  FileId bundle_id;
};

struct Channel {
  ChannelSpec spec;
  std::string owner_id;
  std::optional<pid_t> owner_pid;
  // The containers that joined it (CreateRequest with a member); when the last one leaves,
  // the channel goes. Empty for a channel made without one (by hand, by `run`).
  std::vector<ChannelMember> members;
  uid_t uid = 0;
  gid_t gid = 0;
  std::uint64_t max_inodes = 0;
  // What it made on the host (host_path.hpp): the parents and the host path, outermost
  // first, and the mount on it; removed with it, and only those.
  std::vector<MadeDir> made_dirs;
  MountIdentity mount;
  FileId meta_id, data_id;  // the store's memfds, to recognise them when taken back
  pid_t daemon_pid = 0;
  DescriptorHolder holder;
  ChannelState state = ChannelState::kRunning;

  UniqueFd daemon_pidfd;
  UniqueFd owner_pidfd;
  // Kept for a daemon restart: the FUSE connection and the store's memory outlive the
  // daemon as long as the controller holds them.
  UniqueFd fuse_fd, meta_fd, data_fd;
  UniqueFd metrics_fd;  // the daemon's request counters (fs/metrics.hpp); may be empty

  ChannelInfo info() const;  // with usage from the store's header while we hold its memfd
};

// Make a channel: host path (+ parents), memfds, /dev/fuse, the mount, the daemon, ready.
// All or nothing: a failure undoes every step that was done. The host path must not
// exist and must hold no symlink (kBadInput otherwise).
Expected<Channel> start_channel(const ChannelSpec& spec, const ChannelOptions& options,
                                const Owner& owner);

// Removing a channel, in two steps. First its mount (lazily if busy): a failure changes
// nothing, the channel stays as it was (its mount is still there).
Expected<Unmounted> unmount_channel(const Channel& channel);
// Then the rest, once unmounted: our descriptors, the daemon, the host path and the
// parents it made. When the mount was busy the daemon keeps serving the detached mount
// until its last user goes: channel.daemon_pidfd is then still set (stop_lingering ends
// it early). A failure says what stayed on the host.
Expected<void> release_channel(Channel& channel, Unmounted how);
// Reap a daemon that exited after a lazy unmount, or (force) stop it now.
void stop_lingering(pid_t pid, int pidfd, bool force);

}  // namespace hostchanfs::mountctl
