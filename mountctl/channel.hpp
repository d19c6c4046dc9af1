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
// That is the channel's keeper (keeper.hpp), which gets them at fixed numbers
// (kKeeperFds) and outlives the daemons it starts on them.
struct DescriptorHolder {
  pid_t pid = 0;
  int fuse = -1, meta = -1, data = -1, session = -1;
  int backing = -1;  // --charge writer: the backing tmpfs's root
  int metrics = -1;  // the request counters (fs/metrics.hpp), when the channel has them
  // The clones of `fuse`, one per daemon worker (fs/session_clones.hpp), at `clones`,
  // `clones` + 1, ...: `clone_count` of them.
  int clones = -1;
  int clone_count = 0;
};
// 7 is the first daemon's ready pipe.
inline constexpr DescriptorHolder kKeeperFds{0, 3, 4, 5, 6, 8, 9, 10, 0};

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
  fs::Charge charge = fs::Charge::kChannel;
  // What it made on the host (host_path.hpp): the parents and the host path, outermost
  // first, and the mount on it; removed with it, and only those.
  std::vector<MadeDir> made_dirs;
  MountIdentity mount;
  // The store's memfds and the session record (fs/session_record.hpp), to recognise
  // them when taken back.
  FileId meta_id, data_id, session_id;
  pid_t keeper_pid = 0;
  DescriptorHolder holder;
  std::string run_dir;  // the controller's (its keeper brings up the next controller there)
  ChannelState state = ChannelState::kRunning;

  UniqueFd keeper_pidfd;
  UniqueFd owner_pidfd;
  // The FUSE connection, the store's memory and the session record, held by the
  // controller too: a keeper that dies is replaced on them (restart_keeper).
  UniqueFd fuse_fd, meta_fd, data_fd, session_fd;
  UniqueFd backing_fd;  // --charge writer: the private tmpfs that holds the file data
  UniqueFd metrics_fd;  // the daemon's request counters (fs/metrics.hpp); may be empty
  // Clones of fuse_fd, one per daemon worker (fs/session_clones.hpp): held here and by
  // the keeper, so that a dead daemon's, or a dead keeper's, unanswered requests stay on
  // devices that are still open, to be resent. Empty when /dev/fuse could not be cloned.
  std::vector<UniqueFd> clone_fds;

  // With usage from the store's header and the daemon's pid and restarts from the
  // session record, while we hold their memfds.
  ChannelInfo info() const;
};

// Make a channel: host path (+ parents), memfds, /dev/fuse, the mount, the daemon, ready.
// All or nothing: a failure undoes every step that was done. The host path must not
// exist and must hold no symlink (kBadInput otherwise).
Expected<Channel> start_channel(const ChannelSpec& spec, const ChannelOptions& options,
                                const Owner& owner, const std::string& run_dir);

// A new keeper for a channel whose keeper died, on the descriptors the controller holds;
// its daemon resumes the connection. keeper_pid, keeper_pidfd and holder change.
Expected<void> restart_keeper(Channel& channel);

// Removing a channel, in two steps. First its mount (lazily if busy): a failure changes
// nothing, the channel stays as it was (its mount is still there).
Expected<Unmounted> unmount_channel(const Channel& channel);
// Then the rest, once unmounted: our descriptors, the keeper and its daemon, the host path
// and the parents it made. When the mount was busy the daemon keeps serving the detached
// mount until its last user goes: channel.keeper_pidfd is then still set (stop_lingering
// ends it early). A failure says what stayed on the host.
Expected<void> release_channel(Channel& channel, Unmounted how);
// Reap a keeper that exited after a lazy unmount, or (force) stop it now.
void stop_lingering(pid_t pid, int pidfd, bool force);

}  // namespace hostchanfs::mountctl
