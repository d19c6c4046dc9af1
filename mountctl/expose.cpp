#include "mountctl/expose.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/fsuid.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include <string>

#include <fmt/format.h>

#include "mountctl/in_root.hpp"
#include "sys/child.hpp"
#include "sys/errno_text.hpp"
#include "sys/log.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::mountctl {

namespace {

// The host id that id 0 of `pid`'s user namespace maps to, from /proc/<pid>/uid_map or
// gid_map (0 outside any user namespace, whose map is the identity).
unsigned host_id_of_root(pid_t pid, const char* map) {
  std::ifstream in(fmt::format("/proc/{}/{}", pid, map));
  unsigned inside = 0, outside = 0, count = 0;
  while (in >> inside >> outside >> count) {
    if (inside == 0 && count > 0) return outside;
  }
  return 0;
}

// Runs in a forked child (the caller's namespace must stay the host's). Returns the
// one-line reason on failure. setns(CLONE_NEWNS) refuses (EINVAL) a thread that shares
// its root and cwd with another: a fork's child has one thread, except in a ThreadSanitizer
// build, whose runtime starts a thread in it. unshare(CLONE_FS) gives ours its own.
std::string attach_in_namespace(int ns_fd, int tree_fd, pid_t pid, const std::string& rootfs,
                                const std::string& container_path) {
  // Read before setns: the container's namespace may show its own /proc.
  unsigned root_uid = host_id_of_root(pid, "uid_map"), root_gid = host_id_of_root(pid, "gid_map");
  if (::unshare(CLONE_FS) < 0 || ::setns(ns_fd, CLONE_NEWNS) < 0) {
    return fmt::format("cannot enter the mount namespace of pid {}: {}", pid,
                       errno_text(last_errc()));
  }
  // rootfs is the runtime's own path (trusted); only the container path is resolved
  // inside it.
  UniqueFd root(::open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) {
    return fmt::format("cannot open the container root {} (in the mount namespace of pid {}): {}",
                       rootfs, pid, errno_text(last_errc()));
  }
  auto target = open_dir_in_root(root.get(), container_path, /*create_missing=*/true);
  if (!target && target.error() == std::errc::value_too_large && (root_uid != 0 || root_gid != 0)) {
    // A file system the runtime mounted inside the container's user namespace (its /tmp,
    // /run or /dev tmpfs) takes no new file from an id it does not map (EOVERFLOW): make
    // the mount point as container root (only this child's file system ids change).
    ::setfsgid(root_gid);
    ::setfsuid(root_uid);
    target = open_dir_in_root(root.get(), container_path, /*create_missing=*/true);
    ::setfsuid(0);
    ::setfsgid(0);
  }
  if (!target) {
    return fmt::format(
        "container path {}: cannot make the mount point inside the container root {}: {}",
        container_path, rootfs, errno_text(target.error()));
  }
  if (same_inode(target.value().get(), root.get())) {
    return fmt::format("container path {} resolves to the container's root {} (a symlink in it leads "
                       "there): give a directory below /",
                       container_path, rootfs);
  }
  if (::move_mount(tree_fd, "", target.value().get(), "",
                   MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0) {
    return fmt::format("cannot attach the channel at {} in the container: {}", container_path,
                       errno_text(last_errc()));
  }
  return {};
}

}  // namespace

Expected<void> expose_into(int mount_fd, const std::string& host_path, pid_t pid,
                           const std::string& rootfs, const std::string& container_path,
                           bool read_only) {
  if (container_path.empty() || container_path.front() != '/') {
    return Error::bad_input(fmt::format(
        "container path \"{}\" is not an absolute path: give a path that starts with /",
        container_path));
  }
  if (pid <= 0) return Error::bad_input(fmt::format("pid {} is not a process id", pid));
  if (rootfs.empty() || rootfs.front() != '/') {
    return Error::bad_input(fmt::format("rootfs \"{}\" is not an absolute path", rootfs));
  }

  UniqueFd tree(::open_tree(mount_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE |
                                              AT_EMPTY_PATH));
  if (!tree) {
    return Error::failure(fmt::format("cannot clone the channel mount at {}: {}", host_path,
                                      errno_text(last_errc())));
  }
  // Set while the clone is detached and only ours: the container never sees it writable
  // or shared, not even for a moment.
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC |
                  (read_only ? MOUNT_ATTR_RDONLY : 0);
  attr.propagation = MS_PRIVATE;
  if (::mount_setattr(tree.get(), "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0) {
    return Error::failure(fmt::format("cannot set the attributes of the channel clone of {}: {}",
                                      host_path, errno_text(last_errc())));
  }

  std::string ns_path = fmt::format("/proc/{}/ns/mnt", pid);
  UniqueFd ns(::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns) {
    auto e = last_errc();
    if (e == std::errc::no_such_file_or_directory) {
      return Error::bad_input(fmt::format("process {} does not exist (has the container exited?)", pid));
    }
    return Error::failure(fmt::format("cannot open {}: {}", ns_path, errno_text(e)));
  }

  auto attached = run_in_child([&](int report_fd) {
    std::string why = attach_in_namespace(ns.get(), tree.get(), pid, rootfs, container_path);
    if (!why.empty()) {
      [[maybe_unused]] ssize_t n = ::write(report_fd, why.data(), why.size());
    }
    return why.empty() ? 0 : 1;
  });
  if (!attached) {
    return Error::failure(fmt::format("cannot fork: {}", errno_text(attached.error())));
  }
  if (!attached.value().report.empty()) return Error::failure(attached.value().report);
  if (attached.value().status != 0) {
    return Error::failure(fmt::format("the helper that attaches {} into pid {} failed (status {})",
                                      host_path, pid, attached.value().status));
  }
  log::get("mountctl")->info("exposed {} at {} ({}) in the mount namespace of pid {} (root {})",
                             host_path, container_path, read_only ? "ro" : "rw", pid, rootfs);
  return success();
}

}  // namespace hostchanfs::mountctl
