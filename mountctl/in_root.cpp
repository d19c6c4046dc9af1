#include "mountctl/in_root.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <deque>
#include <string>
#include <vector>

namespace hostchanfs::mountctl {

namespace {

constexpr int kMaxSymlinks = 40;  // the kernel's own limit

// Components of `path`, front first, prepended to `todo` (a symlink target is spliced in
// front of what remains of the path).
void prepend_components(std::deque<std::string>& todo, std::string_view path) {
  std::vector<std::string> parts;
  std::size_t i = 0;
  while (i <= path.size()) {
    std::size_t slash = path.find('/', i);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > i) parts.emplace_back(path.substr(i, slash - i));
    i = slash + 1;
  }
  todo.insert(todo.begin(), parts.begin(), parts.end());
}

Result<std::string> read_link_at(int dirfd, const std::string& name) {
  std::string target(4096, '\0');
  ssize_t n = ::readlinkat(dirfd, name.c_str(), target.data(), target.size());
  if (n < 0) return last_errc();
  target.resize(static_cast<std::size_t>(n));
  return target;
}

}  // namespace

Result<UniqueFd> open_dir_in_root(int root, std::string_view path, bool create_missing) {
  // The usual case (everything exists) is one call; the kernel does the confinement.
  std::string whole(path);
  auto direct = openat2_fd(root, whole.c_str(), O_PATH | O_DIRECTORY,
                           RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
  if (direct || direct.error() != std::errc::no_such_file_or_directory || !create_missing) {
    return direct;
  }

  // Walk one component at a time. `stack` holds the directories from the root down, so
  // ".." pops (never above the root) and an absolute symlink starts again at the root.
  std::vector<UniqueFd> stack;
  HC_TRY(root_fd, openat2_fd(root, ".", O_PATH | O_DIRECTORY, 0));
  stack.push_back(std::move(root_fd));
  std::deque<std::string> todo;
  prepend_components(todo, path);
  int symlinks = 0;
  int creations = 0;
  while (!todo.empty()) {
    std::string name = std::move(todo.front());
    todo.pop_front();
    if (name == ".") continue;
    if (name == "..") {
      if (stack.size() > 1) stack.pop_back();
      continue;
    }
    int dir = stack.back().get();
    struct stat st {};
    if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
      if (errno != ENOENT) return last_errc();
      // Bounded: a racing rename could make us loop otherwise.
      if (++creations > 4096) return std::errc::too_many_symbolic_link_levels;
      if (::mkdirat(dir, name.c_str(), 0755) < 0 && errno != EEXIST) return last_errc();
      todo.push_front(std::move(name));  // look again: it may be a symlink now
      continue;
    }
    if (S_ISLNK(st.st_mode)) {
      if (++symlinks > kMaxSymlinks) return std::errc::too_many_symbolic_link_levels;
      HC_TRY(target, read_link_at(dir, name));
      if (!target.empty() && target.front() == '/') stack.resize(1);
      prepend_components(todo, target);
      continue;
    }
    if (!S_ISDIR(st.st_mode)) return std::errc::not_a_directory;
    // RESOLVE_NO_SYMLINKS: if the name was swapped for a symlink since fstatat, fail.
    HC_TRY(next, openat2_fd(dir, name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW, kResolveNoFollow));
    stack.push_back(std::move(next));
  }
  return std::move(stack.back());
}

bool same_inode(int a, int b) noexcept {
  struct stat sa {}, sb {};
  return ::fstat(a, &sa) == 0 && ::fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

}  // namespace hostchanfs::mountctl
