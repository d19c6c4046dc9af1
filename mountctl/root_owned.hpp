// What only root can change: the controller's run dir and files, the hook's configuration.
// A directory or file is root's own when root owns it and nobody else may write it; the
// directories above it must be root's too and writable by root only, or sticky (as /tmp:
// others cannot rename or remove root's entries in it). Reached by descriptor, without a
// symlink (sys/dirs.hpp), so the check holds for what is then used.
#pragma once

#include <sys/stat.h>

#include <optional>
#include <string>
#include <vector>

#include "mountctl/error.hpp"
#include "sys/dirs.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::mountctl {

// Why `st` is not root's own ("is owned by uid 1000", "is writable by others (mode 0777)"),
// or nullopt. With `sticky_ok` a sticky directory may be writable by others.
std::optional<std::string> not_root_only(const struct stat& st, bool sticky_ok = false);

// The first of `steps` (a walk from "/") that someone other than root could change, as
// "<path> <why>", or nullopt.
std::optional<std::string> untrusted_directory(const std::vector<DirStep>& steps);

// The file `name` in the directory open at `dirfd` (`path` names it in messages), opened
// with `flags` | O_NOFOLLOW | O_CLOEXEC (created 0600 with O_CREAT); it must be a plain
// file of root's: regular, one link (never a symlink, nor a hard link to a file elsewhere),
// writable by root only. kNotFound when it does not exist, kBadInput when it is not root's
// own, kFailure for a system error.
Expected<UniqueFd> open_root_file(int dirfd, const char* name, const std::string& path, int flags);

// What a walk found at `error.path` ("/x is a symlink", "/x is not a directory", ...).
std::string what_is_wrong(const PathError& error);

}  // namespace hostchanfs::mountctl
