#include "fs/session.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "fs/context.hpp"
#include "fs/kernel_mount.hpp"
#include "fs/passthrough.hpp"
#include "fs/metrics.hpp"
#include "fs/session_clones.hpp"
#include "fs/session_io.hpp"
#include "fs/session_resume.hpp"
#include "fs/ops.hpp"
#include "sys/errno_text.hpp"
#include "sys/log.hpp"
#include "sys/memfd.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::fs {

namespace {


struct SessionDeleter {
  void operator()(fuse_session* se) const { fuse_session_destroy(se); }
};
using SessionPtr = std::unique_ptr<fuse_session, SessionDeleter>;

struct LoopConfigDeleter {
  void operator()(fuse_loop_config* c) const { fuse_loop_cfg_destroy(c); }
};

// SIGTERM/SIGINT/SIGHUP end the session loop while installed.
class SignalHandlers {
 public:
  explicit SignalHandlers(fuse_session* se) : se_(fuse_set_signal_handlers(se) == 0 ? se : nullptr) {}
  ~SignalHandlers() {
    if (se_) fuse_remove_signal_handlers(se_);
  }
  SignalHandlers(const SignalHandlers&) = delete;
  SignalHandlers& operator=(const SignalHandlers&) = delete;
  explicit operator bool() const { return se_ != nullptr; }

 private:
  fuse_session* se_;
};

// Our own mount, detached on scope exit (declared after the session, so the mount goes
// before the session closes the /dev/fuse descriptor). A mount made by the controller is
// its owner's to remove.
class OwnMount {
 public:
  explicit OwnMount(std::string path) : path_(std::move(path)) {}
  ~OwnMount() { (void)unmount_fuse(path_); }
  OwnMount(const OwnMount&) = delete;
  OwnMount& operator=(const OwnMount&) = delete;

 private:
  std::string path_;
};

Result<std::unique_ptr<shm::Store>> open_store(const ServeOptions& o) {
  shm::StoreOptions so;
  so.size_bytes = o.size_bytes;
  so.max_inodes = o.max_inodes;
  so.root_uid = o.uid;
  so.root_gid = o.gid;
  so.root_mode = 01777;
  if (o.meta_fd < 0) return shm::Store::create(so);
  UniqueFd meta(o.meta_fd), data(o.data_fd);
  HC_TRY(meta_size, fd_size(meta.get()));
  if (meta_size == 0) return shm::Store::create_in(so, std::move(meta), std::move(data));
  std::string why;
  auto attached = shm::Store::attach(std::move(meta), std::move(data), &why);
  if (!attached) log::get("fs")->error("{}: refusing the store in --meta-fd {}: {}", o.mountpoint, o.meta_fd, why);
  return attached;
}

void signal_ready(int fd, const std::shared_ptr<spdlog::logger>& log) {
  if (fd < 0) return;
  UniqueFd ready(fd);
  static constexpr char kReady[] = "ready\n";
  if (::write(ready.get(), kReady, sizeof kReady - 1) != static_cast<ssize_t>(sizeof kReady - 1))
    log->warn("could not signal readiness on fd {}: {}", fd, errno_text(errno));
}

// --charge writer: the backing tmpfs handed over, or a fresh one for the store's quota.
Result<UniqueFd> open_backing(const ServeOptions& o, const shm::Store& store) {
  if (o.backing_fd >= 0) {
    UniqueFd given(o.backing_fd);
    if (!is_tmpfs_root(given.get())) return std::errc::invalid_argument;
    return given;
  }
  return make_backing_tmpfs(store.quota_pages() * shm::kPageSize, store.max_inodes());
}


}  // namespace

std::optional<std::string> refuse_mountpoint(const std::string& path) {
  struct statx stx {};
  if (::statx(AT_FDCWD, path.c_str(), 0, STATX_TYPE, &stx) < 0) {
    int err = errno;
    if (err == ENOENT)
      return "mount point " + path + " does not exist: create the directory first";
    return "cannot use mount point " + path + ": " + errno_text(err);
  }
  if (!S_ISDIR(stx.stx_mode))
    return "mount point " + path + " is not a directory: give an empty directory";
  if ((stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
      (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT))
    return "mount point " + path + " is already a mount point: unmount it or choose another directory";
  return std::nullopt;
}

int serve(const ServeOptions& o) {
  auto log = log::get("fs");
  std::string name = o.mountpoint;
  if (o.fuse_fd < 0) {
    char resolved[PATH_MAX];
    if (::realpath(o.mountpoint.c_str(), resolved)) name = resolved;
  }

  auto store = open_store(o);
  if (!store) {
    int err = to_errno(store.error());
    log->error("{}: cannot create the store ({} bytes, {} inodes): {}", name, o.size_bytes,
               o.max_inodes, errno_text(err));
    return 1;
  }
  Filesystem filesystem{*store.value(), name, log, o.writeback_cache};
  std::unique_ptr<Passthrough> passthrough;
  if (o.charge == Charge::kWriter) {
    auto backing = open_backing(o, *store.value());
    if (!backing) {
      log->error("{}: --charge writer: cannot {} the backing tmpfs: {}", name,
                 o.backing_fd >= 0 ? "use --backing-fd as" : "make", errno_text(backing.error()));
      return 1;
    }
    // The connection's backing ids live in the session record, for the next daemon.
    auto ids = BackingIds::map(o.session_fd);
    if (!ids) {
      log->error("{}: --charge writer: cannot map the backing ids in --session-fd {}: {}", name, o.session_fd,
                 errno_text(ids.error()));
      return 1;
    }
    passthrough = std::make_unique<Passthrough>(std::move(backing).value(), *store.value(), std::move(ids).value());
    filesystem.passthrough = passthrough.get();
  }
  // The session's I/O layer reads this before INIT; cleared before `passthrough` goes.
  set_passthrough(passthrough.get());
  struct PassthroughGuard {
    ~PassthroughGuard() { set_passthrough(nullptr); }
  } passthrough_guard;
  // The counters the controller reads; a daemon without them still serves.
  std::optional<RequestMetrics> metrics;
  // Held open while serving: a replacement controller takes it back from here.
  UniqueFd metrics_fd(o.metrics_fd);
  if (metrics_fd) {
    auto attached = RequestMetrics::attach(metrics_fd.get());
    if (attached) {
      metrics.emplace(std::move(attached).value());
    } else {
      log->warn("{}: --metrics-fd {} holds no request counters ({}): requests are not counted",
                name, o.metrics_fd, errno_text(to_errno(attached.error())));
    }
  }
  struct CountingScope {
    explicit CountingScope(RequestMetrics* m) { set_daemon_metrics(m); }
    ~CountingScope() { set_daemon_metrics(nullptr); }
  } counting(metrics ? &*metrics : nullptr);

  // The mount options live in kernel_mount.cpp; libfuse only needs a program name here.
  // HOSTCHANFS_FUSE_DEBUG=1 prints every request (how bench/ counts round trips).
  std::vector<std::string> argv_text = {"hostchanfs"};
  if (std::getenv("HOSTCHANFS_FUSE_DEBUG")) argv_text.push_back("-d");
  std::vector<char*> argv;
  for (auto& a : argv_text) argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  // libfuse may copy the arguments while parsing them; the copy is ours to free.
  struct ArgsGuard {
    fuse_args* a;
    ~ArgsGuard() { fuse_opt_free_args(a); }
  } args_guard{&args};
  SessionPtr se(fuse_session_new(&args, &lowlevel_ops(), sizeof(fuse_lowlevel_ops), &filesystem));
  if (!se) {
    log->error("{}: cannot create the FUSE session", name);
    return 1;
  }
  filesystem.session = se.get();
  SignalHandlers signals(se.get());
  if (!signals) {
    log->error("{}: cannot install signal handlers", name);
    return 1;
  }
  UniqueFd fuse_fd(o.fuse_fd);
  std::optional<OwnMount> own_mount;
  if (!fuse_fd) {
    auto mounted = mount_fuse(name, o.uid, o.gid);
    if (!mounted) {
      log->error("{}: cannot mount: {}", name, errno_text(mounted.error()));
      return 1;
    }
    fuse_fd = std::move(mounted).value();
    own_mount.emplace(name);
  }
  if (!setup_session_resume(o.session_fd, name)) return 1;
  if (auto io = use_session_io(se.get(), std::move(fuse_fd)); !io) {
    log->error("{}: cannot serve /dev/fuse: {}", name, errno_text(io.error()));
    return 1;
  }
  if (passthrough) passthrough->set_fuse_fd(fuse_session_fd(se.get()));
  log->info("{}: {} ({} bytes, {} inodes, charge {}{})", name, session_resumed() ? "resuming" : "mounted",
            store.value()->quota_pages() * shm::kPageSize, store.value()->max_inodes(), charge_name(o.charge),
            o.fuse_fd >= 0 ? ", fd from the controller" : "");

  // A device per worker (fs/session_clones.hpp): the keeper's, or our own when nobody
  // would resume this connection after us.
  std::vector<UniqueFd> clones;
  for (int fd : o.fuse_clone_fds) clones.emplace_back(fd);
  if (clones.empty() && o.session_fd < 0) {
    auto made = clone_fuse_fd(fuse_session_fd(se.get()), session_workers());
    if (made) {
      clones = std::move(made).value();
    } else {
      log->warn("{}: cannot clone /dev/fuse ({}): every worker reads the one descriptor", name,
                errno_text(made.error()));
    }
  }
  std::vector<int> clone_fds;
  for (auto& c : clones) clone_fds.push_back(c.get());
  use_worker_clones(std::move(clone_fds));

  std::unique_ptr<fuse_loop_config, LoopConfigDeleter> cfg(fuse_loop_cfg_create());
  // libfuse's own clones would be the daemon's to lose (see above): off.
  fuse_loop_cfg_set_clone_fd(cfg.get(), 0);
  fuse_loop_cfg_set_max_threads(cfg.get(), session_workers());
  signal_ready(o.ready_fd, log);
  int rc = fuse_session_loop_mt(se.get(), cfg.get());
  // Teardown (unmount, store) must finish even if another SIGTERM comes now: once the
  // handlers are removed it would kill the process halfway. Blocked signals die with us.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&stop_signals, sig);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  if (rc < 0) {
    log->error("{}: the session loop failed: {}", name, errno_text(-rc));
    return 1;
  }
  log->info("{}: {}, unmounting", name, rc > 0 ? "stopped by a signal" : "unmounted from outside");
  return 0;
}

}  // namespace hostchanfs::fs
