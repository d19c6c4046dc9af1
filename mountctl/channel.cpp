#include "mountctl/channel.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <system_error>
#include <vector>

#include <fmt/format.h>

#include "fs/session_clones.hpp"
#include "fs/session_record.hpp"
#include "fs/passthrough.hpp"
#include "fs/metrics.hpp"
#include "shm/store.hpp"
#include "sys/child.hpp"
#include "sys/errno_text.hpp"
#include "sys/log.hpp"
#include "sys/memfd.hpp"
#include "sys/pidfd.hpp"
#include "sys/scope_guard.hpp"

namespace hostchanfs::mountctl {

namespace {

constexpr auto kDaemonReadyTimeout = std::chrono::seconds(30);
constexpr auto kDaemonExitTimeout = std::chrono::seconds(5);

void reap(pid_t pid) {
  // ECHILD for a daemon adopted from an earlier controller: nothing to reap.
  while (::waitpid(pid, nullptr, WNOHANG) < 0 && errno == EINTR) {
  }
}

void stop_keeper(pid_t pid, int pidfd, bool expect_exit) {
  if (pidfd < 0) return;
  if (expect_exit && wait_pidfd(pidfd, kDaemonExitTimeout)) return reap(pid);
  if (!terminate_pidfd(pidfd, kDaemonExitTimeout)) {
    log::get("mountctl")->warn("keeper pid {} ignored SIGTERM: it was killed", pid);
  }
  reap(pid);
}

// `hostchanfs keep` (keeper.hpp) on the descriptors the channel holds, placed at
// kKeeperFds (the numbers the registry records), running `hostchanfs serve` on them; both
// keep stdout and stderr (the controller's log). `ready_write` (-1: none) goes to the
// first daemon.
Expected<Child> spawn_keeper(const Channel& ch, int ready_write) {
  constexpr int kReadyFd = 7;
  const DescriptorHolder& at = kKeeperFds;
  std::vector<std::string> argv = {"hostchanfs", "keep", "--run-dir", ch.run_dir,
                                   "--session-fd", std::to_string(at.session)};
  if (ready_write >= 0) {
    argv.push_back("--ready-fd");
    argv.push_back(std::to_string(kReadyFd));
  }
  std::vector<std::string> serve = {"--", "serve",
                                    "--size", std::to_string(ch.spec.size_bytes),
                                    "--inodes", std::to_string(ch.max_inodes),
                                    "--uid", std::to_string(ch.uid),
                                    "--gid", std::to_string(ch.gid),
                                    "--fuse-fd", std::to_string(at.fuse),
                                    "--meta-fd", std::to_string(at.meta),
                                    "--data-fd", std::to_string(at.data),
                                    "--session-fd", std::to_string(at.session)};
  if (!ch.clone_fds.empty()) {
    std::string list;
    for (std::size_t i = 0; i < ch.clone_fds.size(); ++i)
      list += (i ? "," : "") + std::to_string(at.clones + static_cast<int>(i));
    serve.insert(serve.end(), {"--fuse-clone-fds", list});
  }
  if (ch.charge == fs::Charge::kWriter) {
    for (std::string a : {"--charge", "writer", "--backing-fd"}) serve.push_back(std::move(a));
    serve.push_back(std::to_string(at.backing));
  }
  // Counted when the channel has request counters.
  if (ch.metrics_fd) serve.insert(serve.end(), {"--metrics-fd", std::to_string(at.metrics)});
  serve.push_back(ch.spec.host_path);
  argv.insert(argv.end(), serve.begin(), serve.end());
  Exec keep(std::move(argv));
  keep.program("/proc/self/exe");
  keep.place_fd(ch.fuse_fd.get(), at.fuse).place_fd(ch.meta_fd.get(), at.meta);
  keep.place_fd(ch.data_fd.get(), at.data).place_fd(ch.session_fd.get(), at.session);
  if (ch.backing_fd) keep.place_fd(ch.backing_fd.get(), at.backing);
  if (ch.metrics_fd) keep.place_fd(ch.metrics_fd.get(), at.metrics);
  for (std::size_t i = 0; i < ch.clone_fds.size(); ++i)
    keep.place_fd(ch.clone_fds[i].get(), at.clones + static_cast<int>(i));
  if (ready_write >= 0) keep.place_fd(ready_write, kReadyFd);
  auto keeper = Child::spawn(keep);
  if (!keeper) return Error::failure(fmt::format("cannot fork the keeper: {}", errno_text(keeper.error())));
  return std::move(keeper).value();
}

void adopt_keeper(Channel& ch, Child keeper) {
  auto [pid, pidfd] = keeper.release();
  ch.keeper_pid = pid;
  ch.keeper_pidfd = std::move(pidfd);
  ch.holder = kKeeperFds;
  ch.holder.pid = pid;
  ch.holder.clone_count = static_cast<int>(ch.clone_fds.size());
}

// The daemon writes a byte to its ready fd once it serves the mount.
Expected<void> wait_ready(int ready_read, int keeper_pidfd, const std::string& host_path) {
  pollfd fds[2] = {{ready_read, POLLIN, 0}, {keeper_pidfd, POLLIN, 0}};
  int rc;
  while ((rc = ::poll(fds, 2, static_cast<int>(std::chrono::milliseconds(kDaemonReadyTimeout).count()))) < 0 &&
         errno == EINTR) {
  }
  if (rc == 0) {
    return Error::failure(fmt::format("the daemon for {} did not become ready in {} s",
                                      host_path, kDaemonReadyTimeout.count()));
  }
  if (fds[0].revents) {
    char byte;
    if (::read(ready_read, &byte, 1) == 1) return success();
  }
  return Error::failure(fmt::format(
      "the daemon for {} exited before it was ready (its log is in the controller's log)",
      host_path));
}

Result<FileId> id_of(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) < 0) return last_errc();
  return file_id(st);
}

}  // namespace

Expected<void> restart_keeper(Channel& ch) {
  if (!ch.fuse_fd || !ch.meta_fd || !ch.data_fd || !ch.session_fd) {
    return Error::failure("the controller does not hold the channel's descriptors");
  }
  HC_TRY(keeper, spawn_keeper(ch, -1));
  adopt_keeper(ch, std::move(keeper));
  return success();
}

const char* state_name(ChannelState s) { return s == ChannelState::kRunning ? "running" : "failed"; }

ChannelInfo Channel::info() const {
  ChannelInfo i;
  i.spec = spec;
  i.owner_id = owner_id;
  i.uid = uid;
  i.gid = gid;
  i.max_inodes = max_inodes;
  i.keeper_pid = keeper_pid;
  i.charge = charge;
  i.state = state_name(state);
  if (session_fd) {
    if (auto r = fs::read_session_record(session_fd.get())) {
      i.daemon_pid = static_cast<pid_t>(r.value().header.daemon_pid);
      i.restarts = r.value().restarts();
    }
  }
  for (const ChannelMember& m : members) i.members.push_back(m.who);
  // Usage comes from the store's own header in the memfd we hold, never from statfs on
  // the mount: a daemon that died or hangs would make statfs (and so the controller,
  // which holds the /dev/fuse descriptor) wait forever.
  if (meta_fd) {
    if (auto u = shm::peek_usage(meta_fd.get())) {
      i.bytes_used = u.value().pages_used * shm::kPageSize;
      i.inodes_used = u.value().inodes_used;
      if (i.max_inodes == 0) i.max_inodes = u.value().max_inodes;
    }
  }
  // Writer-charged: everything the channel holds is in its backing tmpfs (the store's own
  // pages are mirrored there), which answers without its daemon.
  if (backing_fd) {
    if (auto used = fs::backing_bytes_used(backing_fd.get())) i.bytes_used = used.value();
  }
  return i;
}

Expected<Channel> start_channel(const ChannelSpec& spec, const ChannelOptions& options,
                                const Owner& owner, const std::string& run_dir) {
  auto logger = log::get("mountctl");
  Channel ch;
  ch.spec = spec;
  ch.owner_id = owner.id;
  ch.owner_pid = owner.pid;
  ch.uid = options.uid.value_or(0);
  ch.gid = options.gid.value_or(0);
  ch.max_inodes = options.max_inodes;
  ch.run_dir = run_dir;
  ch.charge = options.charge;
  if (ch.charge == fs::Charge::kWriter) {
    if (auto why = fs::refuse_writer_charge()) return Error::bad_input(*why);
  }

  // Each step that succeeded is undone, in reverse, unless the whole start succeeds.
  HC_TRY(host, mount_host_path(spec.host_path, ch.uid, ch.gid));
  ch.made_dirs = std::move(host.made_dirs);
  ch.mount = host.mount;
  ch.fuse_fd = std::move(host.fuse_fd);
  // A daemon without them still serves, on the one descriptor.
  if (auto clones = fs::clone_fuse_fd(ch.fuse_fd.get(), fs::session_workers())) {
    ch.clone_fds = std::move(clones).value();
  } else {
    logger->warn("channel {}: cannot clone /dev/fuse: {}: its daemons read one descriptor", spec.host_path,
                 errno_text(clones.error()));
  }
  ScopeGuard undo_mount([&ch] {
    if (unmount_channel(ch)) (void)remove_host_dirs(ch.spec.host_path, ch.made_dirs);
  });

  auto meta = make_memfd("hostchanfs-meta", 0);
  auto data = make_memfd("hostchanfs-data", 0);
  auto session = make_memfd("hostchanfs-session", fs::kSessionRecordSize);
  auto meta_id = meta ? id_of(meta.value().get()) : Result<FileId>(meta.error());
  auto data_id = data ? id_of(data.value().get()) : Result<FileId>(data.error());
  auto session_id = session ? id_of(session.value().get()) : Result<FileId>(session.error());
  for (const auto* id : {&meta_id, &data_id, &session_id}) {
    if (!*id) {
      return Error::failure(fmt::format("cannot make the channel's memory: memfd_create: {}",
                                        errno_text(id->error())));
    }
  }
  ch.meta_fd = std::move(meta).value();
  ch.data_fd = std::move(data).value();
  ch.session_fd = std::move(session).value();
  ch.meta_id = meta_id.value();
  ch.data_id = data_id.value();
  ch.session_id = session_id.value();
  if (ch.charge == fs::Charge::kWriter) {
    std::uint64_t inodes = ch.max_inodes ? ch.max_inodes : shm::Store::default_max_inodes(spec.size_bytes);
    auto backing = fs::make_backing_tmpfs(spec.size_bytes, inodes);
    if (!backing) {
      return Error::failure(fmt::format("cannot make the backing tmpfs of {}: {}", spec.host_path,
                                        errno_text(backing.error())));
    }
    ch.backing_fd = std::move(backing).value();
  }
  // Request counters are a nicety: a channel without them still works.
  if (auto counters = fs::RequestMetrics::create()) {
    ch.metrics_fd = std::move(counters).value();
  } else {
    logger->warn("channel {}: no request counters: {}", spec.host_path, errno_text(counters.error()));
  }

  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) < 0) {
    return Error::failure(fmt::format("cannot make a pipe: {}", errno_text(last_errc())));
  }
  UniqueFd ready_read(ready[0]), ready_write(ready[1]);
  HC_TRY(keeper, spawn_keeper(ch, ready_write.get()));
  ready_write.reset();
  adopt_keeper(ch, std::move(keeper));
  ScopeGuard undo_keeper([&ch] { stop_keeper(ch.keeper_pid, ch.keeper_pidfd.get(), false); });
  HC_TRYV(wait_ready(ready_read.get(), ch.keeper_pidfd.get(), spec.host_path));

  undo_keeper.dismiss();
  undo_mount.dismiss();
  logger->info("channel {} ({}, {} bytes, charge {}) mounted, keeper pid {}, daemon pid {}, owner {}",
               spec.host_path, spec.read_only ? "ro" : "rw", spec.size_bytes, fs::charge_name(ch.charge),
               ch.keeper_pid, ch.info().daemon_pid, owner.id);
  return ch;
}

void stop_lingering(pid_t pid, int pidfd, bool force) {
  if (force) return stop_keeper(pid, pidfd, false);
  reap(pid);
}

Expected<Unmounted> unmount_channel(const Channel& ch) {
  HC_TRY(how, unmount_host_path(ch.spec.host_path, ch.mount));
  if (how == Unmounted::kDetached) {
    log::get("mountctl")->info("channel {} is busy: detached lazily", ch.spec.host_path);
  }
  return how;
}

Expected<void> release_channel(Channel& ch, Unmounted how) {
  auto logger = log::get("mountctl");
  bool lazy = how == Unmounted::kDetached;
  // Our copies of the connection and the memory go now: with the mount gone nothing can
  // restart the daemon, and the last /dev/fuse fd closing ends any request still waiting
  // on a dead daemon.
  ch.fuse_fd.reset();
  ch.meta_fd.reset();
  ch.data_fd.reset();
  ch.session_fd.reset();
  ch.backing_fd.reset();
  ch.metrics_fd.reset();
  ch.clone_fds.clear();
  if (lazy && ch.state == ChannelState::kRunning && ch.keeper_pidfd) {
    // Detached but busy: like a lazily unmounted tmpfs, the files still open keep
    // working until closed. The kernel ends the connection when the last user goes, and
    // the daemon and its keeper exit then; ch.keeper_pidfd stays set for the caller to watch.
    logger->info("channel {}: keeper pid {} serves the detached mount until its last user goes",
                 ch.spec.host_path, ch.keeper_pid);
  } else {
    // After a clean unmount the kernel ends the connection: the daemon exits by itself,
    // and its keeper with it.
    stop_keeper(ch.keeper_pid, ch.keeper_pidfd.get(), !lazy && ch.state == ChannelState::kRunning);
    ch.keeper_pidfd.reset();
  }
  ch.owner_pidfd.reset();
  auto removed = remove_host_dirs(ch.spec.host_path, ch.made_dirs);
  logger->info("channel {} removed", ch.spec.host_path);
  return removed;
}

}  // namespace hostchanfs::mountctl
