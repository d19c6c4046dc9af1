// Directories by descriptor, never by a path string that could change under us. An
// absolute path is walked from "/" one component at a time, each opened from its parent's
// descriptor with openat2(RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH), so
// a symlink anywhere in it stops the walk (ELOOP, naming it) instead of redirecting it.
// What is missing is made with mkdirat on the parent's descriptor, and each directory made
// is opened again and checked to be the one just made (ours, empty, on its parent's
// filesystem: a racing rename that swapped it for something else fails the check) before
// the walk goes on. Its identity (device, inode) is recorded, so that exactly it — and
// nothing put in its place later — is removed again.
//
// Used for a channel's host path and its parents (mountctl/host_path.hpp) and for the
// controller's run dir (mountctl/run_dir.hpp).
#pragma once

#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "sys/result.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs {

// What a file is, wherever it is now: its device and inode.
struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const FileId&) const = default;
};
inline FileId file_id(const struct stat& st) noexcept { return {st.st_dev, st.st_ino}; }

// A directory this process made: where, and which one.
struct MadeDir {
  std::string path;
  FileId id;
};

// Why a walk stopped and where: ELOOP at a symlink, ENOTDIR at something that is not a
// directory, EAGAIN at a directory that was replaced while it was being made, EINVAL for a
// path that is not clean and absolute.
struct PathError {
  std::errc error;
  std::string path;
};
template <class T>
using PathResult = outcome::result<T, PathError, outcome::policy::terminate>;

// openat2(2) (glibc 2.36 has no wrapper); O_CLOEXEC is always added.
Result<UniqueFd> openat2_fd(int dirfd, const char* path, std::uint64_t flags,
                            std::uint64_t resolve) noexcept;

// The resolve flags of every step: no symlink, no /proc magic link, nothing above the dir.
inline constexpr std::uint64_t kResolveNoFollow =
    RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH;

// "/a/b" -> {"a", "b"}; "/" -> {}. EINVAL unless `path` is absolute and clean (no empty,
// "." or ".." component, no trailing slash).
Result<std::vector<std::string>> path_components(std::string_view path);

// "/a/b" -> "/a" and "b"; "/a" -> "/" and "a". For a clean absolute path other than "/".
std::pair<std::string, std::string> split_parent(std::string_view path);

// One directory of a walk, with what fstat said about it (for ownership checks).
struct DirStep {
  std::string path;
  struct stat st;
};

// A walk as far as the path exists.
struct DirWalk {
  UniqueFd dir;     // O_PATH: the deepest directory that exists
  UniqueFd parent;  // O_PATH: the one holding it ("/" for "/")
  std::string path;
  std::vector<DirStep> steps;        // "/" and every directory walked, in order
  std::vector<std::string> missing;  // the components below `dir` that do not exist
};
PathResult<DirWalk> walk_dirs(std::string_view path);

// The whole of `path`, which must exist: ENOENT names the first missing component.
PathResult<UniqueFd> open_dir_nofollow(std::string_view path);

// What make_dirs made: descriptors of the last directory and of its parent, and every
// directory it made, outermost first (one that a racing mkdir made first is used, not
// recorded: it is not ours to remove).
struct MadeDirs {
  UniqueFd dir;
  UniqueFd parent;
  std::vector<MadeDir> made;
};
// mkdir -p of `walk.missing` below `walk.dir`: `mode` for each, `last_mode` for the last.
// All or nothing: on failure what it made is removed again.
PathResult<MadeDirs> make_dirs(DirWalk walk, mode_t mode, mode_t last_mode);
PathResult<MadeDirs> make_dirs(std::string_view path, mode_t mode, mode_t last_mode);

// Removes directories make_dirs made, innermost first, each only while its path (walked
// again, no symlink followed) still leads to that very directory; one that is not empty,
// or has something mounted on it, stays. Returns the ones that stayed.
std::vector<MadeDir> remove_dirs(const std::vector<MadeDir>& made) noexcept;

}  // namespace hostchanfs
