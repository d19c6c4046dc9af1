#include "mountctl/channel.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include "mountctl/pidfd.hpp"
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <functional>
#include <string>
#include <system_error>
#include <vector>

#include <fmt/format.h>

#include "fs/kernel_mount.hpp"
#include "shm/store.hpp"
#include "sys/log.hpp"
#include "sys/memfd.hpp"

namespace hostchanfs::mountctl {

namespace {

constexpr int kDaemonReadyTimeoutMs = 30'000;
constexpr int kDaemonExitTimeoutMs = 5'000;

std::string errno_text(std::errc e) { return std::make_error_code(e).message(); }

// The steps done so far, undone in reverse unless the whole start succeeded.
class Undo {
 public:
  Undo() = default;
  Undo(const Undo&) = delete;
  Undo& operator=(const Undo&) = delete;
  ~Undo() {
    for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) (*it)();
  }
  void add(std::function<void()> step) { steps_.push_back(std::move(step)); }
  void commit() { steps_.clear(); }

 private:
  std::vector<std::function<void()>> steps_;
};

const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISLNK(mode)) return "a symlink";
  if (S_ISREG(mode)) return "a file";
  return "a special file";
}

Expected<void> check_host_path_free(const std::string& host_path) {
  struct stat st {};
  if (::lstat(host_path.c_str(), &st) == 0) {
    return Error::bad_input(fmt::format(
        "host path \"{}\" already exists ({}): give a path that does not exist yet, the "
        "channel makes it and removes it",
        host_path, file_kind(st.st_mode)));
  }
  auto e = last_errc();
  if (e == std::errc::not_a_directory) {
    return Error::bad_input(fmt::format(
        "host path \"{}\" is below something that is not a directory", host_path));
  }
  if (e != std::errc::no_such_file_or_directory) {
    return Error::failure(fmt::format("cannot check host path {}: {}", host_path, errno_text(e)));
  }
  return success();
}

// mkdir -p of `path`, recording each directory made (outermost first).
Expected<void> make_dirs(const std::string& path, std::vector<std::string>& made) {
  std::size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    std::string prefix = path.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0755) == 0) {
      made.push_back(prefix);
      continue;
    }
    if (errno == EEXIST) {
      struct stat st {};
      if (::stat(prefix.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) continue;
      return Error::bad_input(fmt::format("cannot make host path {}: {} is not a directory",
                                          path, prefix));
    }
    return Error::failure(
        fmt::format("cannot make directory {}: {}", prefix, errno_text(last_errc())));
  }
  return success();
}

void remove_dirs(const std::vector<std::string>& made) {
  for (auto it = made.rbegin(); it != made.rend(); ++it) ::rmdir(it->c_str());
}

// Waits until the pidfd's process ends or `timeout_ms` passes; true if it ended.
bool wait_exit(int pidfd, int timeout_ms) {
  pollfd p{pidfd, POLLIN, 0};
  int rc;
  while ((rc = ::poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {
  }
  return rc > 0;
}

void reap(pid_t pid) {
  // ECHILD for a daemon adopted from an earlier controller: nothing to reap.
  while (::waitpid(pid, nullptr, WNOHANG) < 0 && errno == EINTR) {
  }
}

void stop_daemon(pid_t pid, int pidfd, bool expect_exit) {
  if (pidfd < 0) return;
  if (expect_exit && wait_exit(pidfd, kDaemonExitTimeoutMs)) return reap(pid);
  signal_pidfd(pidfd, SIGTERM);
  if (!wait_exit(pidfd, kDaemonExitTimeoutMs)) {
    log::get("mountctl")->warn("daemon pid {} ignored SIGTERM: killing it", pid);
    signal_pidfd(pidfd, SIGKILL);
    wait_exit(pidfd, -1);
  }
  reap(pid);
}

struct Daemon {
  pid_t pid = 0;
  UniqueFd pidfd;
};

Expected<Daemon> spawn_daemon(const Channel& ch, int ready_write) {
  std::vector<std::string> args = {
      "hostchanfs", "serve",
      "--size", std::to_string(ch.spec.size_bytes),
      "--inodes", std::to_string(ch.max_inodes),
      "--uid", std::to_string(ch.uid),
      "--gid", std::to_string(ch.gid),
      "--fuse-fd", std::to_string(ch.fuse_fd.get()),
      "--meta-fd", std::to_string(ch.meta_fd.get()),
      "--data-fd", std::to_string(ch.data_fd.get()),
      "--ready-fd", std::to_string(ready_write),
      ch.spec.host_path};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int inherited[] = {ch.fuse_fd.get(), ch.meta_fd.get(), ch.data_fd.get(), ready_write};

  pid_t pid = ::fork();
  if (pid < 0) return Error::failure(fmt::format("cannot fork the daemon: {}", errno_text(last_errc())));
  if (pid == 0) {
    // The controller blocks the signals it reads through a signalfd; the daemon needs them.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int fd : inherited) ::fcntl(fd, F_SETFD, 0);
    int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, STDIN_FILENO);
    ::execv("/proc/self/exe", argv.data());
    ::_exit(127);
  }
  // pidfd_open on our own unreaped child cannot name another process.
  Daemon d;
  d.pid = pid;
  d.pidfd.reset(open_pidfd(pid));
  if (!d.pidfd) {
    auto e = last_errc();
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return Error::failure(fmt::format("cannot watch the daemon: pidfd_open: {}", errno_text(e)));
  }
  return d;
}

// The daemon writes a byte to its ready fd once it serves the mount.
Expected<void> wait_ready(int ready_read, const Daemon& d, const std::string& host_path) {
  pollfd fds[2] = {{ready_read, POLLIN, 0}, {d.pidfd.get(), POLLIN, 0}};
  int rc;
  while ((rc = ::poll(fds, 2, kDaemonReadyTimeoutMs)) < 0 && errno == EINTR) {
  }
  if (rc == 0) {
    return Error::failure(fmt::format("the daemon for {} did not become ready in {} s",
                                      host_path, kDaemonReadyTimeoutMs / 1000));
  }
  if (fds[0].revents) {
    char byte;
    if (::read(ready_read, &byte, 1) == 1) return success();
  }
  return Error::failure(fmt::format(
      "the daemon for {} exited before it was ready (its log is in the controller's log)",
      host_path));
}

std::string state_name(ChannelState s) { return s == ChannelState::kRunning ? "running" : "failed"; }

}  // namespace

ChannelInfo Channel::info() const {
  ChannelInfo i;
  i.spec = spec;
  i.owner_id = owner_id;
  i.uid = uid;
  i.gid = gid;
  i.max_inodes = max_inodes;
  i.daemon_pid = daemon_pid;
  i.state = state_name(state);
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

json Channel::record() const {
  json r = json(spec);
  r["owner_id"] = owner_id;
  r["owner_pid"] = owner_pid ? json(*owner_pid) : json(nullptr);
  r["uid"] = uid;
  r["gid"] = gid;
  r["max_inodes"] = max_inodes;
  r["created_dirs"] = created_dirs;
  r["daemon_pid"] = daemon_pid;
  r["state"] = state_name(state);
  // The daemon's descriptor numbers (the same as ours at spawn time): a restarted
  // controller can take them back from the daemon with pidfd_getfd.
  r["daemon_fds"] = {{"fuse", fuse_fd.get()}, {"meta", meta_fd.get()}, {"data", data_fd.get()}};
  return r;
}

Channel Channel::from_record(const json& r) {
  Channel ch;
  r.get_to(ch.spec);
  r.at("owner_id").get_to(ch.owner_id);
  if (r.contains("owner_pid") && !r["owner_pid"].is_null()) ch.owner_pid = r["owner_pid"].get<pid_t>();
  r.at("uid").get_to(ch.uid);
  r.at("gid").get_to(ch.gid);
  r.at("max_inodes").get_to(ch.max_inodes);
  r.at("created_dirs").get_to(ch.created_dirs);
  r.at("daemon_pid").get_to(ch.daemon_pid);
  ch.state = r.value("state", "failed") == "running" ? ChannelState::kRunning : ChannelState::kFailed;
  return ch;
}

Expected<Channel> start_channel(const ChannelSpec& spec, const ChannelOptions& options,
                                const Owner& owner) {
  auto logger = log::get("mountctl");
  HC_TRYV(check_host_path_free(spec.host_path));

  Channel ch;
  ch.spec = spec;
  ch.owner_id = owner.id;
  ch.owner_pid = owner.pid;
  ch.uid = options.uid.value_or(0);
  ch.gid = options.gid.value_or(0);
  ch.max_inodes = options.max_inodes;
  Undo undo;

  auto dirs = make_dirs(spec.host_path, ch.created_dirs);
  undo.add([&ch] { remove_dirs(ch.created_dirs); });
  if (!dirs) return dirs.error();

  auto meta = make_memfd("hostchanfs-meta", 0);
  auto data = make_memfd("hostchanfs-data", 0);
  if (!meta || !data) {
    return Error::failure(fmt::format("cannot make the channel's memory: memfd_create: {}",
                                      errno_text(!meta ? meta.error() : data.error())));
  }
  ch.meta_fd = std::move(meta).value();
  ch.data_fd = std::move(data).value();
  // The same kernel mount `serve` makes for itself (fs/kernel_mount.hpp).
  auto mounted = fs::mount_fuse(spec.host_path, ch.uid, ch.gid);
  if (!mounted) {
    return Error::failure(fmt::format("cannot mount the channel at {}: {} (is /dev/fuse there?)",
                                      spec.host_path, errno_text(mounted.error())));
  }
  ch.fuse_fd = std::move(mounted).value();
  undo.add([path = spec.host_path] {
    if (::umount2(path.c_str(), UMOUNT_NOFOLLOW) < 0) ::umount2(path.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
  });

  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) < 0) {
    return Error::failure(fmt::format("cannot make a pipe: {}", errno_text(last_errc())));
  }
  UniqueFd ready_read(ready[0]), ready_write(ready[1]);
  HC_TRY(daemon, spawn_daemon(ch, ready_write.get()));
  ready_write.reset();
  ch.daemon_pid = daemon.pid;
  ch.daemon_pidfd = std::move(daemon.pidfd);
  undo.add([&ch] { stop_daemon(ch.daemon_pid, ch.daemon_pidfd.get(), false); });
  Daemon view{ch.daemon_pid, UniqueFd(::dup(ch.daemon_pidfd.get()))};
  HC_TRYV(wait_ready(ready_read.get(), view, spec.host_path));

  undo.commit();
  logger->info("channel {} ({}, {} bytes) mounted, daemon pid {}, owner {}", spec.host_path,
               spec.read_only ? "ro" : "rw", spec.size_bytes, ch.daemon_pid, owner.id);
  return ch;
}

void stop_lingering(pid_t pid, int pidfd, bool force) {
  if (force) return stop_daemon(pid, pidfd, false);
  reap(pid);
}

Expected<void> stop_channel(Channel& ch) {
  auto logger = log::get("mountctl");
  std::optional<Error> first;
  const char* path = ch.spec.host_path.c_str();
  bool lazy = false;
  if (::umount2(path, UMOUNT_NOFOLLOW) < 0) {
    auto e = last_errc();
    if (e == std::errc::device_or_resource_busy) {
      lazy = true;
      logger->info("channel {} is busy: detaching it lazily", ch.spec.host_path);
      if (::umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) < 0) {
        first = Error::failure(fmt::format("cannot unmount {}: {}", ch.spec.host_path,
                                           errno_text(last_errc())));
      }
    } else if (e != std::errc::invalid_argument && e != std::errc::no_such_file_or_directory) {
      first = Error::failure(fmt::format("cannot unmount {}: {}", ch.spec.host_path, errno_text(e)));
    }
  }
  // Our copies of the connection and the memory go now: with the mount gone nothing can
  // restart the daemon, and the last /dev/fuse fd closing ends any request still waiting
  // on a dead daemon.
  ch.fuse_fd.reset();
  ch.meta_fd.reset();
  ch.data_fd.reset();
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
  if (::rmdir(path) < 0 && errno != ENOENT && !first) {
    first = Error::failure(fmt::format("cannot remove host path {}: {}", ch.spec.host_path,
                                       errno_text(last_errc())));
  }
  remove_dirs(ch.created_dirs);
  logger->info("channel {} removed", ch.spec.host_path);
  if (first) return *first;
  return success();
}

}  // namespace hostchanfs::mountctl
