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

void stop_daemon(pid_t pid, int pidfd, bool expect_exit) {
  if (pidfd < 0) return;
  if (expect_exit && wait_pidfd(pidfd, kDaemonExitTimeout)) return reap(pid);
  if (!terminate_pidfd(pidfd, kDaemonExitTimeout)) {
    log::get("mountctl")->warn("daemon pid {} ignored SIGTERM: it was killed", pid);
  }
  reap(pid);
}

// `hostchanfs serve` on the descriptors the channel holds, placed at kDaemonFds (the
// numbers the registry records); it keeps stdout and stderr (the controller's log).
Expected<Child> spawn_daemon(const Channel& ch, int ready_write) {
  constexpr int kReadyFd = 6;
  const DescriptorHolder& at = kDaemonFds;
  std::vector<std::string> argv = {"hostchanfs", "serve",
                                   "--size", std::to_string(ch.spec.size_bytes),
                                   "--inodes", std::to_string(ch.max_inodes),
                                   "--uid", std::to_string(ch.uid),
                                   "--gid", std::to_string(ch.gid),
                                   "--fuse-fd", std::to_string(at.fuse),
                                   "--meta-fd", std::to_string(at.meta),
                                   "--data-fd", std::to_string(at.data),
                                   "--ready-fd", std::to_string(kReadyFd)};
  // Counted when the channel has request counters.
  if (ch.metrics_fd) argv.insert(argv.end(), {"--metrics-fd", std::to_string(kDaemonMetricsFd)});
  argv.push_back(ch.spec.host_path);
  Exec serve(std::move(argv));
  serve.program("/proc/self/exe");
  serve.place_fd(ch.fuse_fd.get(), at.fuse).place_fd(ch.meta_fd.get(), at.meta);
  serve.place_fd(ch.data_fd.get(), at.data).place_fd(ready_write, kReadyFd);
  if (ch.metrics_fd) serve.place_fd(ch.metrics_fd.get(), kDaemonMetricsFd);
  auto daemon = Child::spawn(serve);
  if (!daemon) return Error::failure(fmt::format("cannot fork the daemon: {}", errno_text(daemon.error())));
  return std::move(daemon).value();
}

// The daemon writes a byte to its ready fd once it serves the mount.
Expected<void> wait_ready(int ready_read, int daemon_pidfd, const std::string& host_path) {
  pollfd fds[2] = {{ready_read, POLLIN, 0}, {daemon_pidfd, POLLIN, 0}};
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

const char* state_name(ChannelState s) { return s == ChannelState::kRunning ? "running" : "failed"; }

ChannelInfo Channel::info() const {
  ChannelInfo i;
  i.spec = spec;
  i.owner_id = owner_id;
  i.uid = uid;
  i.gid = gid;
  i.max_inodes = max_inodes;
  i.daemon_pid = daemon_pid;
  i.state = state_name(state);
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
  return i;
}

Expected<Channel> start_channel(const ChannelSpec& spec, const ChannelOptions& options,
                                const Owner& owner) {
  auto logger = log::get("mountctl");
  Channel ch;
  ch.spec = spec;
  ch.owner_id = owner.id;
  ch.owner_pid = owner.pid;
  ch.uid = options.uid.value_or(0);
  ch.gid = options.gid.value_or(0);
  ch.max_inodes = options.max_inodes;

  // Each step that succeeded is undone, in reverse, unless the whole start succeeds.
  HC_TRY(host, mount_host_path(spec.host_path, ch.uid, ch.gid));
  ch.made_dirs = std::move(host.made_dirs);
  ch.mount = host.mount;
  ch.fuse_fd = std::move(host.fuse_fd);
  ScopeGuard undo_mount([&ch] {
    if (unmount_channel(ch)) (void)remove_host_dirs(ch.spec.host_path, ch.made_dirs);
  });

  auto meta = make_memfd("hostchanfs-meta", 0);
  auto data = make_memfd("hostchanfs-data", 0);
  auto meta_id = meta ? id_of(meta.value().get()) : Result<FileId>(meta.error());
  auto data_id = data ? id_of(data.value().get()) : Result<FileId>(data.error());
  if (!meta_id || !data_id) {
    return Error::failure(fmt::format("cannot make the channel's memory: memfd_create: {}",
                                      errno_text(!meta_id ? meta_id.error() : data_id.error())));
  }
  ch.meta_fd = std::move(meta).value();
  ch.data_fd = std::move(data).value();
  ch.meta_id = meta_id.value();
  ch.data_id = data_id.value();
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
  HC_TRY(daemon, spawn_daemon(ch, ready_write.get()));
  ready_write.reset();
  auto [daemon_pid, daemon_pidfd] = daemon.release();
  ch.daemon_pid = daemon_pid;
  ch.daemon_pidfd = std::move(daemon_pidfd);
  ch.holder = kDaemonFds;
  ch.holder.pid = daemon_pid;
  ScopeGuard undo_daemon([&ch] { stop_daemon(ch.daemon_pid, ch.daemon_pidfd.get(), false); });
  HC_TRYV(wait_ready(ready_read.get(), ch.daemon_pidfd.get(), spec.host_path));

  undo_daemon.dismiss();
  undo_mount.dismiss();
  logger->info("channel {} ({}, {} bytes) mounted, daemon pid {}, owner {}", spec.host_path,
               spec.read_only ? "ro" : "rw", spec.size_bytes, ch.daemon_pid, owner.id);
  return ch;
}

void stop_lingering(pid_t pid, int pidfd, bool force) {
  if (force) return stop_daemon(pid, pidfd, false);
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
  ch.metrics_fd.reset();
  if (lazy && ch.state == ChannelState::kRunning && ch.daemon_pidfd) {
    // Detached but busy: like a lazily unmounted tmpfs, the files still open keep
    // working until closed. The kernel ends the connection when the last user goes, and
    // the daemon exits then; ch.daemon_pidfd stays set for the caller to watch.
    logger->info("channel {}: daemon pid {} serves the detached mount until its last user goes",
                 ch.spec.host_path, ch.daemon_pid);
  } else {
    // After a clean unmount the kernel ends the connection and the daemon exits by itself.
    stop_daemon(ch.daemon_pid, ch.daemon_pidfd.get(), !lazy && ch.state == ChannelState::kRunning);
    ch.daemon_pidfd.reset();
  }
  ch.owner_pidfd.reset();
  auto removed = remove_host_dirs(ch.spec.host_path, ch.made_dirs);
  logger->info("channel {} removed", ch.spec.host_path);
  return removed;
}

}  // namespace hostchanfs::mountctl
