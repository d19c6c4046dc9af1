#include "mountctl/run_root.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <utility>

#include <fmt/format.h>

#include "mountctl/in_root.hpp"
#include "sys/errno_text.hpp"

namespace hostchanfs::mountctl {

namespace {

// glibc 2.36 wraps none of the new mount API's file system calls.
int fs_open(const char* type) { return static_cast<int>(::syscall(SYS_fsopen, type, FSOPEN_CLOEXEC)); }
int fs_config(int fd, unsigned cmd, const char* key, const char* value, int aux) {
  return static_cast<int>(::syscall(SYS_fsconfig, fd, cmd, key, value, aux));
}
int fs_mount(int fd, unsigned attrs) {
  return static_cast<int>(::syscall(SYS_fsmount, fd, FSMOUNT_CLOEXEC, attrs));
}

Error system_error(const std::string& what) {
  return Error::failure(fmt::format("{}: {}", what, errno_text(last_errc())));
}

// A clone of the mount at `path`, without the mounts below it, with `attrs` set.
Expected<UniqueFd> clone_alone(const std::string& path, std::uint64_t attrs) {
  UniqueFd tree(::open_tree(AT_FDCWD, path.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
  if (!tree) return system_error(fmt::format("cannot clone the mount of {}", path));
  mount_attr attr{};
  attr.attr_set = attrs;
  attr.propagation = MS_PRIVATE;
  if (::mount_setattr(tree.get(), "", AT_EMPTY_PATH, &attr, sizeof attr) < 0) {
    return system_error(fmt::format("cannot set the attributes of the clone of {}", path));
  }
  return tree;
}

// A file system context made into a detached mount, or the error naming `what`.
Expected<UniqueFd> mount_context(int context, const std::string& what, unsigned attrs) {
  if (fs_config(context, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0) {
    return system_error(fmt::format("cannot make {}", what));
  }
  UniqueFd mnt(fs_mount(context, attrs));
  if (!mnt) return system_error(fmt::format("cannot mount {}", what));
  return mnt;
}

// The overlay over `lower` (read-only) whose upper layer is a tmpfs of its own, detached.
Expected<UniqueFd> overlay_over(int lower) {
  UniqueFd tmpfs_ctx(fs_open("tmpfs"));
  if (!tmpfs_ctx) return system_error("cannot open a tmpfs context");
  fs_config(tmpfs_ctx.get(), FSCONFIG_SET_STRING, "size", "1m", 0);
  fs_config(tmpfs_ctx.get(), FSCONFIG_SET_STRING, "nr_inodes", "4096", 0);
  fs_config(tmpfs_ctx.get(), FSCONFIG_SET_STRING, "mode", "0755", 0);
  HC_TRY(scratch, mount_context(tmpfs_ctx.get(), "the root's upper tmpfs",
                                MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV));
  // The upper directory lends the overlay's root its owner and mode: the host root's.
  struct stat host_root {};
  if (::fstat(lower, &host_root) < 0 || ::mkdirat(scratch.get(), "upper", host_root.st_mode & 07777) < 0 ||
      ::mkdirat(scratch.get(), "work", 0700) < 0 ||
      ::fchownat(scratch.get(), "upper", host_root.st_uid, host_root.st_gid, 0) < 0) {
    return system_error("cannot make the root's upper layer");
  }
  UniqueFd upper(::openat(scratch.get(), "upper", O_PATH | O_DIRECTORY | O_CLOEXEC));
  UniqueFd work(::openat(scratch.get(), "work", O_PATH | O_DIRECTORY | O_CLOEXEC));
  UniqueFd ctx(fs_open("overlay"));
  if (!upper || !work || !ctx) return system_error("cannot open an overlay context");
  if (fs_config(ctx.get(), FSCONFIG_SET_FD, "lowerdir+", nullptr, lower) < 0 ||
      fs_config(ctx.get(), FSCONFIG_SET_FD, "upperdir", nullptr, upper.get()) < 0 ||
      fs_config(ctx.get(), FSCONFIG_SET_FD, "workdir", nullptr, work.get()) < 0) {
    return system_error("cannot give the overlay its layers");
  }
  return mount_context(ctx.get(), "the overlay over the host's root", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
}

Error resolves_to_root(const std::string& container_path) {
  return Error::bad_input(fmt::format(
      "container path \"{}\" resolves to the container's root (a symlink in the root leads "
      "there): give a directory below /",
      container_path));
}

}  // namespace

ContainerRoot::ContainerRoot(ContainerRoot&& o) noexcept
    : tree_(std::move(o.tree_)), root_(std::move(o.root_)), attached_(std::exchange(o.attached_, {})) {}

Expected<ContainerRoot> ContainerRoot::open(const std::string& rootfs) {
  ContainerRoot root;
  if (rootfs.empty()) {
    HC_TRY(tree, clone_alone("/", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV));
    HC_TRY(overlay, overlay_over(tree.get()));
    root.tree_ = std::move(tree);
    root.root_ = std::move(overlay);
  } else {
    HC_TRY(tree, clone_alone(rootfs, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV));
    root.tree_ = std::move(tree);
  }
  return root;
}

Expected<void> ContainerRoot::check_mount_point(const std::string& container_path) const {
  auto target = openat2_fd(tree_.get(), container_path.c_str(), O_PATH,
                           RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
  if (!target) {
    if (target.error() == std::errc::no_such_file_or_directory) return success();  // made later
    return Error::bad_input(fmt::format("container path \"{}\" cannot be resolved in the container's root: {}",
                                        container_path, errno_text(target.error())));
  }
  struct stat st {};
  if (::fstat(target.value().get(), &st) < 0 || !S_ISDIR(st.st_mode)) {
    return Error::bad_input(fmt::format(
        "container path \"{}\" is not a directory in the container's root: give a directory", container_path));
  }
  if (same_inode(target.value().get(), tree_.get())) return resolves_to_root(container_path);
  return success();
}

Result<void> ContainerRoot::find_program(const std::string& program,
                                         const std::vector<std::string>& search_path) const {
  std::vector<std::string> candidates;
  if (program.find('/') != std::string::npos) {
    candidates.push_back(program);
  } else {
    for (const auto& dir : search_path) candidates.push_back(dir + "/" + program);
  }
  std::errc found = std::errc::no_such_file_or_directory;
  for (const auto& path : candidates) {
    auto file = openat2_fd(tree_.get(), path.c_str(), O_PATH, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
    struct stat st {};
    if (!file || ::fstat(file.value().get(), &st) < 0) continue;
    if (S_ISREG(st.st_mode) && (st.st_mode & 0111) != 0) return success();
    found = std::errc::permission_denied;
  }
  return found;
}

Expected<void> ContainerRoot::attach(const std::string& target) {
  int source = root_ ? root_.get() : tree_.get();
  if (::move_mount(source, "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) < 0) {
    return system_error(fmt::format("cannot attach the container's root at {}", target));
  }
  attached_ = target;
  return success();
}

Expected<void> ContainerRoot::make_mount_points(const std::vector<std::string>& paths) {
  UniqueFd root(::open(attached_.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root) return system_error(fmt::format("cannot open the container's root at {}", attached_));
  for (const auto& path : paths) {
    auto dir = open_dir_in_root(root.get(), path, /*create_missing=*/true);
    if (!dir) {
      return Error::failure(fmt::format("cannot make {} in the container's root: {}", path,
                                        errno_text(dir.error())));
    }
    if (same_inode(dir.value().get(), root.get())) return resolves_to_root(path);
  }
  return success();
}

void ContainerRoot::detach() noexcept {
  if (attached_.empty()) return;
  ::umount2(attached_.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
  attached_.clear();
}

}  // namespace hostchanfs::mountctl
