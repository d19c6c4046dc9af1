#include "mountctl/host_path.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <sstream>
#include <string>

#include <fmt/format.h>

#include "fs/kernel_mount.hpp"
#include "mountctl/root_owned.hpp"
#include "sys/errno_text.hpp"
#include "sys/read_file.hpp"
#include "sys/scope_guard.hpp"

namespace hostchanfs::mountctl {

namespace {

constexpr unsigned kStatxMntIdUnique = 0x4000;  // Linux 6.8; not in Debian 12's headers
constexpr std::string_view kFsType = "fuse.hostchanfs";
constexpr const char* kParentsAdvice = "give a path whose directories only root can write";

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISLNK(mode)) return "a symlink";
  if (S_ISREG(mode)) return "a file";
  return "a special file";
}

Error already_exists(const std::string& host, const char* kind) {
  return Error::bad_input(fmt::format(
      "host path \"{}\" already exists ({}): give a path that does not exist yet, the channel "
      "makes it and removes it",
      host, kind));
}

// The refusal for a walk of the host path that stopped at `e`.
Error walk_refusal(const std::string& host, const PathError& e) {
  if (e.path == host && (e.error == std::errc::too_many_symbolic_link_levels ||
                         e.error == std::errc::not_a_directory)) {
    struct stat st {};
    bool known = ::lstat(host.c_str(), &st) == 0;  // only to name what is there
    return already_exists(host, known ? kind_of(st.st_mode) : "not a directory");
  }
  if (e.error == std::errc::too_many_symbolic_link_levels) {
    return Error::bad_input(fmt::format(
        "host path \"{}\": {}: give the path without symlinks (a channel's host path never "
        "follows one)", host, what_is_wrong(e)));
  }
  if (e.error == std::errc::not_a_directory) {
    return Error::bad_input(fmt::format("cannot make host path {}: {}", host, what_is_wrong(e)));
  }
  if (e.error == std::errc::resource_unavailable_try_again) {
    return Error::failure(fmt::format("host path \"{}\": {}: nothing was mounted; {}", host,
                                      what_is_wrong(e), kParentsAdvice));
  }
  return Error::failure(fmt::format("cannot make host path {}: {}", host, what_is_wrong(e)));
}

Result<MountIdentity> identity_of(int fd) {
  constexpr int kFlags = AT_EMPTY_PATH | AT_STATX_DONT_SYNC | AT_SYMLINK_NOFOLLOW;
  struct statx unique {}, reusable {};
  if (::statx(fd, "", kFlags, kStatxMntIdUnique, &unique) < 0 ||
      ::statx(fd, "", kFlags, STATX_MNT_ID, &reusable) < 0) {
    return last_errc();
  }
  if (!(unique.stx_mask & kStatxMntIdUnique) || !(reusable.stx_mask & STATX_MNT_ID)) {
    return std::errc::not_supported;
  }
  return MountIdentity{unique.stx_mnt_id, static_cast<std::uint32_t>(reusable.stx_mnt_id),
                       makedev(unique.stx_dev_major, unique.stx_dev_minor)};
}

// The unique id of the mount whose root is at `name` in `parent` (0: none reachable).
std::uint64_t mount_at(int parent, const std::string& name) {
  auto root = openat2_fd(parent, name.c_str(), O_PATH, kResolveNoFollow);
  if (!root) return 0;
  auto id = identity_of(root.value().get());
  return id ? id.value().unique_id : 0;
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mountinfo(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int value = 0;
      bool octal = true;
      for (std::size_t k = 1; k <= 3; ++k) {
        char c = s[i + k];
        octal = octal && c >= '0' && c <= '7';
        value = value * 8 + (c - '0');
      }
      if (octal) {
        out += static_cast<char>(value);
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

// A hostchanfs mount as /proc/self/mountinfo lists it.
struct ListedMount {
  std::uint32_t id = 0;
  std::string dev;  // "major:minor"
  std::string point;
};

std::vector<ListedMount> hostchanfs_mounts() {
  std::vector<ListedMount> found;
  std::istringstream in(read_small_file("/proc/self/mountinfo"));
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    ListedMount m;
    std::string parent, root, point;
    auto dash = line.find(" - ");
    if (!(fields >> m.id >> parent >> m.dev >> root >> point) || dash == std::string::npos) continue;
    std::istringstream after(line.substr(dash + 3));
    std::string type;
    if (after >> type && type == kFsType) {
      m.point = unescape_mountinfo(point);
      found.push_back(std::move(m));
    }
  }
  return found;
}

// Where the mount is now: its mount point, when /proc/self/mountinfo lists a hostchanfs
// mount with its id on its device (a record naming another file system finds nothing).
std::optional<std::string> mount_point_of(const MountIdentity& m) {
  std::string want_dev = fmt::format("{}:{}", major(m.dev), minor(m.dev));
  for (ListedMount& listed : hostchanfs_mounts()) {
    if (listed.id == m.id && listed.dev == want_dev) return std::move(listed.point);
  }
  return std::nullopt;
}

// The channel's mount, reached from its mount point's parent without a symlink.
struct Reached {
  UniqueFd parent;
  std::string name;
  std::string point;
};

Expected<std::optional<Reached>> reach(const std::string& host, const MountIdentity& m) {
  auto point = mount_point_of(m);
  if (!point) return std::optional<Reached>();
  auto [parent_path, name] = split_parent(*point);
  auto parent = open_dir_nofollow(parent_path);
  if (!parent) {
    return Error::failure(fmt::format("channel {}: its mount at {} cannot be reached: {}", host,
                                      *point, what_is_wrong(parent.error())));
  }
  if (mount_at(parent.value().get(), name) != m.unique_id) {
    return Error::failure(fmt::format(
        "channel {}: another mount covers it at {}: unmount that one first", host, *point));
  }
  return std::optional<Reached>(Reached{std::move(parent).value(), name, *point});
}

// The current path of the directory open at `fd` (to find one a racing rename moved).
std::string current_path(int fd) {
  std::string link(4096, '\0');
  ssize_t n = ::readlink(fmt::format("/proc/self/fd/{}", fd).c_str(), link.data(), link.size());
  link.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return link;
}

}  // namespace

Expected<HostMount> mount_host_path(const std::string& host, uid_t uid, gid_t gid) {
  auto walk = walk_dirs(host);
  if (!walk) return walk_refusal(host, walk.error());
  if (walk.value().missing.empty()) return already_exists(host, "a directory");
  auto dirs = make_dirs(std::move(walk).value(), 0755, 0755);
  if (!dirs) return walk_refusal(host, dirs.error());
  MadeDirs& made = dirs.value();
  ScopeGuard undo_dirs([&made] { remove_dirs(made.made); });
  if (made.made.empty() || made.made.back().path != host) {
    return already_exists(host, "a directory");  // a racing mkdir made it first
  }

  auto mounted = fs::mount_fuse_on(made.dir.get(), host, uid, gid);
  if (!mounted) {
    return Error::failure(fmt::format("cannot mount the channel at {}: {} (is /dev/fuse there?)",
                                      host, errno_text(mounted.error())));
  }
  auto identity = identity_of(mounted.value().mount.get());
  auto name = split_parent(host).second;
  if (!identity || mount_at(made.parent.get(), name) != identity.value().unique_id) {
    // The directory was moved between its check and the mount: the mount went with it.
    // Detach it by its own descriptor (the magic link followed: no UMOUNT_NOFOLLOW), and
    // remove the directory where it is now.
    ::umount2(fmt::format("/proc/self/fd/{}", mounted.value().mount.get()).c_str(), MNT_DETACH);
    mounted.value().mount.reset();
    made.made.back().path = current_path(made.dir.get());
    return Error::failure(fmt::format(
        "host path \"{}\" changed while the channel was being mounted on it (a racing rename): "
        "it was unmounted again; {}", host, kParentsAdvice));
  }
  undo_dirs.dismiss();
  return HostMount{std::move(made.made), identity.value(), std::move(mounted.value().fuse)};
}

Expected<Unmounted> unmount_host_path(const std::string& host, const MountIdentity& m) {
  HC_TRY(reached, reach(host, m));
  if (!reached) return Unmounted::kNotMounted;
  // By the parent's descriptor: the mount point itself cannot be renamed while mounted on.
  std::string target = fmt::format("/proc/self/fd/{}/{}", reached->parent.get(), reached->name);
  Unmounted how = Unmounted::kUnmounted;
  if (::umount2(target.c_str(), UMOUNT_NOFOLLOW) < 0) {
    auto e = last_errc();
    if (e != std::errc::device_or_resource_busy ||
        mount_at(reached->parent.get(), reached->name) != m.unique_id ||
        ::umount2(target.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) < 0) {
      return Error::failure(fmt::format("cannot unmount channel {} at {}: {}", host,
                                        reached->point, errno_text(last_errc())));
    }
    how = Unmounted::kDetached;
  }
  if (is_mounted(m)) {
    return Error::failure(fmt::format("channel {} is still mounted at {} after unmounting it",
                                      host, reached->point));
  }
  return how;
}

Expected<UniqueFd> open_channel_mount(const std::string& host, const MountIdentity& m) {
  HC_TRY(reached, reach(host, m));
  if (!reached) return Error::not_found(fmt::format("channel {} is not mounted", host));
  auto root = openat2_fd(reached->parent.get(), reached->name.c_str(), O_PATH, kResolveNoFollow);
  auto id = root ? identity_of(root.value().get()) : Result<MountIdentity>(root.error());
  if (!id || id.value().unique_id != m.unique_id) {
    return Error::failure(fmt::format("channel {}: its mount at {} cannot be opened", host,
                                      reached->point));
  }
  return std::move(root).value();
}

bool is_mounted(const MountIdentity& m) { return mount_point_of(m).has_value(); }

std::vector<std::string> channel_mount_points() {
  std::vector<std::string> points;
  for (ListedMount& m : hostchanfs_mounts()) points.push_back(std::move(m.point));
  return points;
}

Expected<void> remove_host_dirs(const std::string& host, const std::vector<MadeDir>& made) {
  for (const MadeDir& d : remove_dirs(made)) {
    if (d.path == host) {
      return Error::failure(fmt::format(
          "channel {}: its host path stays: something that is not the channel's is on it now "
          "(a mount, or files)", host));
    }
  }
  return success();
}

}  // namespace hostchanfs::mountctl
