// Resolving an untrusted path inside a container's root: every symlink (absolute or
// relative) and every ".." is taken relative to the root, so no path in a rootfs can make
// us open, create or mount anything outside it.
#pragma once

#include <string_view>

#include "sys/dirs.hpp"
#include "sys/result.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::mountctl {

// An O_PATH descriptor of the directory `path` inside the tree rooted at `root` (a
// directory fd), as if `root` were "/". With `create_missing`, missing directories are
// made (mode 0755) one component at a time inside the root; a dangling symlink is
// followed inside the root and its target made. ENOTDIR when a component is not a
// directory, ELOOP after 40 symlinks.
Result<UniqueFd> open_dir_in_root(int root, std::string_view path, bool create_missing);

// Whether two descriptors name the same file (device and inode): a mount point that a
// symlink turned into the root itself.
bool same_inode(int a, int b) noexcept;

}  // namespace hostchanfs::mountctl
