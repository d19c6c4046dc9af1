#include "sys/dirs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hostchanfs {

namespace {

std::string join(const std::string& dir, const std::string& name) {
  return dir == "/" ? "/" + name : dir + "/" + name;
}

Result<struct stat> fstat_fd(int fd) noexcept {
  struct stat st {};
  if (::fstat(fd, &st) < 0) return last_errc();
  return st;
}

// Whether the directory open at `fd` (not O_PATH) holds nothing but "." and "..".
bool is_empty_dir(int fd) noexcept {
  alignas(8) char buf[1024];
  for (;;) {
    long n = ::syscall(SYS_getdents64, fd, buf, sizeof buf);
    if (n <= 0) return n == 0;
    for (long at = 0; at < n;) {
      auto* entry = reinterpret_cast<const struct dirent64*>(buf + at);
      if (std::strcmp(entry->d_name, ".") != 0 && std::strcmp(entry->d_name, "..") != 0) return false;
      at += entry->d_reclen;
    }
  }
}

struct FreshDir {
  UniqueFd fd;
  FileId id;
};

// mkdirat, then the proof that what is now at `name` is what mkdirat made: a directory of
// ours, empty, on the parent's filesystem, reached without a symlink or a mount crossing.
// A racing rename that swapped it for a symlink, another directory or a mount point fails
// with EAGAIN (what we made is then elsewhere, not ours to chase).
Result<FreshDir> make_fresh_dir(int parent, const std::string& name, mode_t mode) noexcept {
  if (::mkdirat(parent, name.c_str(), mode) < 0) return last_errc();
  auto fd = openat2_fd(parent, name.c_str(), O_RDONLY | O_DIRECTORY,
                       kResolveNoFollow | RESOLVE_NO_XDEV);
  if (!fd) return std::errc::resource_unavailable_try_again;
  auto st = fstat_fd(fd.value().get());
  auto parent_st = fstat_fd(parent);
  if (!st || !parent_st) return std::errc::resource_unavailable_try_again;
  if (!S_ISDIR(st.value().st_mode) || st.value().st_uid != ::geteuid() ||
      st.value().st_dev != parent_st.value().st_dev || !is_empty_dir(fd.value().get())) {
    return std::errc::resource_unavailable_try_again;
  }
  return FreshDir{std::move(fd).value(), file_id(st.value())};
}

}  // namespace

Result<UniqueFd> openat2_fd(int dirfd, const char* path, std::uint64_t flags,
                            std::uint64_t resolve) noexcept {
  open_how how{};
  how.flags = flags | O_CLOEXEC;
  how.resolve = resolve;
  long fd = ::syscall(SYS_openat2, dirfd, path, &how, sizeof how);
  if (fd < 0) return last_errc();
  return UniqueFd(static_cast<int>(fd));
}

Result<std::vector<std::string>> path_components(std::string_view path) {
  if (path.empty() || path.front() != '/') return std::errc::invalid_argument;
  std::vector<std::string> parts;
  if (path == "/") return parts;
  std::size_t at = 1;
  for (;;) {
    std::size_t slash = path.find('/', at);
    std::string_view part = path.substr(at, slash == std::string_view::npos ? slash : slash - at);
    if (part.empty() || part == "." || part == "..") return std::errc::invalid_argument;
    parts.emplace_back(part);
    if (slash == std::string_view::npos) return parts;
    at = slash + 1;
  }
}

std::pair<std::string, std::string> split_parent(std::string_view path) {
  std::size_t slash = path.rfind('/');
  std::string parent(slash == 0 ? std::string_view("/") : path.substr(0, slash));
  return {parent, std::string(path.substr(slash + 1))};
}

PathResult<DirWalk> walk_dirs(std::string_view path) {
  auto parts = path_components(path);
  if (!parts) return PathError{parts.error(), std::string(path)};
  DirWalk walk;
  walk.path = "/";
  auto root = openat2_fd(AT_FDCWD, "/", O_PATH | O_DIRECTORY, 0);
  auto root_again = openat2_fd(AT_FDCWD, "/", O_PATH | O_DIRECTORY, 0);
  if (!root || !root_again) return PathError{!root ? root.error() : root_again.error(), "/"};
  auto root_st = fstat_fd(root.value().get());
  if (!root_st) return PathError{root_st.error(), "/"};
  walk.steps.push_back({"/", root_st.value()});
  walk.dir = std::move(root).value();
  walk.parent = std::move(root_again).value();
  for (std::size_t i = 0; i < parts.value().size(); ++i) {
    const std::string& name = parts.value()[i];
    std::string sub = join(walk.path, name);
    auto next = openat2_fd(walk.dir.get(), name.c_str(), O_PATH | O_DIRECTORY, kResolveNoFollow);
    if (!next) {
      if (next.error() != std::errc::no_such_file_or_directory) return PathError{next.error(), sub};
      walk.missing.assign(parts.value().begin() + static_cast<std::ptrdiff_t>(i), parts.value().end());
      return walk;
    }
    auto st = fstat_fd(next.value().get());
    if (!st) return PathError{st.error(), sub};
    walk.steps.push_back({sub, st.value()});
    walk.parent = std::move(walk.dir);
    walk.dir = std::move(next).value();
    walk.path = std::move(sub);
  }
  return walk;
}

PathResult<UniqueFd> open_dir_nofollow(std::string_view path) {
  auto walk = walk_dirs(path);
  if (!walk) return walk.error();
  if (!walk.value().missing.empty()) {
    return PathError{std::errc::no_such_file_or_directory,
                     join(walk.value().path, walk.value().missing.front())};
  }
  return std::move(walk.value().dir);
}

PathResult<MadeDirs> make_dirs(DirWalk walk, mode_t mode, mode_t last_mode) {
  MadeDirs out;
  out.dir = std::move(walk.dir);
  out.parent = std::move(walk.parent);
  std::string path = walk.path;
  for (std::size_t i = 0; i < walk.missing.size(); ++i) {
    const std::string& name = walk.missing[i];
    std::string sub = join(path, name);
    auto made = make_fresh_dir(out.dir.get(), name, i + 1 == walk.missing.size() ? last_mode : mode);
    UniqueFd next;
    if (made) {
      out.made.push_back({sub, made.value().id});
      next = std::move(made.value().fd);
    } else if (made.error() == std::errc::file_exists) {
      // Made meanwhile by someone else (another controller starting): use it, not ours.
      auto existing = openat2_fd(out.dir.get(), name.c_str(), O_PATH | O_DIRECTORY, kResolveNoFollow);
      if (existing) next = std::move(existing).value();
      else made = existing.error();
    }
    if (!next) {
      remove_dirs(out.made);
      return PathError{made.error(), sub};
    }
    out.parent = std::move(out.dir);
    out.dir = std::move(next);
    path = std::move(sub);
  }
  return out;
}

PathResult<MadeDirs> make_dirs(std::string_view path, mode_t mode, mode_t last_mode) {
  auto walk = walk_dirs(path);
  if (!walk) return walk.error();
  return make_dirs(std::move(walk).value(), mode, last_mode);
}

std::vector<MadeDir> remove_dirs(const std::vector<MadeDir>& made) noexcept {
  std::vector<MadeDir> stayed;
  try {
    for (auto it = made.rbegin(); it != made.rend(); ++it) {
      auto [parent_path, name] = split_parent(it->path);
      auto parent = open_dir_nofollow(parent_path);
      struct stat st {};
      if (!parent) {
        if (parent.error().error != std::errc::no_such_file_or_directory) stayed.push_back(*it);
        continue;
      }
      if (::fstatat(parent.value().get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno != ENOENT) stayed.push_back(*it);
        continue;
      }
      // Something else is there now (put in its place, or mounted on it): not ours.
      if (!S_ISDIR(st.st_mode) || file_id(st) != it->id ||
          (::unlinkat(parent.value().get(), name.c_str(), AT_REMOVEDIR) < 0 && errno != ENOENT)) {
        stayed.push_back(*it);
      }
    }
  } catch (...) {  // only bad_alloc: what is left stays
  }
  return stayed;
}

}  // namespace hostchanfs
