#include "fs/session.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "fs/context.hpp"
#include "fs/ops.hpp"
#include "sys/log.hpp"
#include "sys/memfd.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::fs {

namespace {

// Mount options: what iSulad's tmpfs gets (nosuid,nodev,noexec), usable by every uid
// with the kernel enforcing modes and the sticky bit, and named for df and /proc/mounts.
constexpr const char* kMountOptions =
    "fsname=hostchanfs,subtype=hostchanfs,allow_other,default_permissions,nosuid,nodev,noexec";

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

// The kernel mount, unmounted (lazily, MNT_DETACH) on scope exit. For a /dev/fuse fd
// handed over by the controller, libfuse leaves the mount to its owner.
class Mounted {
 public:
  explicit Mounted(fuse_session* se) : se_(se) {}
  ~Mounted() { fuse_session_unmount(se_); }
  Mounted(const Mounted&) = delete;
  Mounted& operator=(const Mounted&) = delete;

 private:
  fuse_session* se_;
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
  return shm::Store::attach(std::move(meta), std::move(data));
}

void signal_ready(int fd, const std::shared_ptr<spdlog::logger>& log) {
  if (fd < 0) return;
  UniqueFd ready(fd);
  static constexpr char kReady[] = "ready\n";
  if (::write(ready.get(), kReady, sizeof kReady - 1) != static_cast<ssize_t>(sizeof kReady - 1))
    log->warn("could not signal readiness on fd {}: {}", fd, std::strerror(errno));
}

unsigned worker_threads() {
  // Handlers never block on anything slower than a store lock: a few per core suffice.
  return std::max(4u, 2 * std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace

std::optional<std::string> refuse_mountpoint(const std::string& path) {
  struct statx stx {};
  if (::statx(AT_FDCWD, path.c_str(), 0, STATX_TYPE, &stx) < 0) {
    int err = errno;
    if (err == ENOENT)
      return "mount point " + path + " does not exist: create the directory first";
    return "cannot use mount point " + path + ": " + std::strerror(err);
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
               o.max_inodes, std::strerror(err));
    return 1;
  }
  Filesystem filesystem{*store.value(), name, log};

  std::vector<std::string> argv_text = {"hostchanfs", "-o", kMountOptions};
  std::vector<char*> argv;
  for (auto& a : argv_text) argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  SessionPtr se(fuse_session_new(&args, &lowlevel_ops(), sizeof(fuse_lowlevel_ops), &filesystem));
  if (!se) {
    log->error("{}: cannot create the FUSE session", name);
    return 1;
  }
  SignalHandlers signals(se.get());
  if (!signals) {
    log->error("{}: cannot install signal handlers", name);
    return 1;
  }
  std::string target = o.fuse_fd >= 0 ? "/dev/fd/" + std::to_string(o.fuse_fd) : name;
  if (fuse_session_mount(se.get(), target.c_str()) != 0) {
    log->error("{}: mount failed (see the libfuse message above)", name);
    return 1;
  }
  Mounted mounted(se.get());
  log->info("{}: mounted ({} bytes, {} inodes{})", name, store.value()->quota_pages() * shm::kPageSize,
            store.value()->max_inodes(), o.fuse_fd >= 0 ? ", fd from the controller" : "");

  std::unique_ptr<fuse_loop_config, LoopConfigDeleter> cfg(fuse_loop_cfg_create());
  fuse_loop_cfg_set_clone_fd(cfg.get(), 1);
  fuse_loop_cfg_set_max_threads(cfg.get(), worker_threads());
  signal_ready(o.ready_fd, log);
  int rc = fuse_session_loop_mt(se.get(), cfg.get());
  if (rc < 0) {
    log->error("{}: the session loop failed: {}", name, std::strerror(-rc));
    return 1;
  }
  log->info("{}: {}, unmounting", name, rc > 0 ? "stopped by a signal" : "unmounted from outside");
  return 0;
}

}  // namespace hostchanfs::fs
