// The root of `hostchanfs run`'s container, made before the runtime runs and owned here.
//
//  - Without --rootfs, the host's / read-only and NOT recursive: a clone of the root
//    mount alone (open_tree without AT_RECURSIVE), so that no other mount of the host
//    comes along (no channel, no /run, /tmp or /dev of the host, nothing a host mounted
//    over a directory to hide it is shown either: the runtime mounts its own /dev, /proc,
//    /sys, /tmp and /run on top). The clone is read-only, nosuid and nodev, and it is the
//    lower layer of an overlay whose upper layer is a small tmpfs of its own: a mount point
//    the host lacks (the seed's /testdir) is made there, never on the host.
//  - With --rootfs DIR, a clone of DIR alone, nosuid and nodev (a device node in an
//    image opens nothing); mount points are made in DIR, as runtimes do.
// Until attach() nothing is visible anywhere: the trees are detached mounts held by
// descriptors, which is what the checks below resolve against. Once the runtime has
// created the container, which holds its own copy, detach() takes the root away from the
// host's mount table again; the destructor does the same on every other path.
#pragma once

#include <string>
#include <vector>

#include "mountctl/error.hpp"
#include "sys/result.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::mountctl {

class ContainerRoot {
 public:
  // `rootfs`: "" for the host's /, else an absolute directory (not /).
  static Expected<ContainerRoot> open(const std::string& rootfs);

  ContainerRoot(ContainerRoot&& o) noexcept;
  ContainerRoot& operator=(ContainerRoot&&) = delete;
  ContainerRoot(const ContainerRoot&) = delete;
  ContainerRoot& operator=(const ContainerRoot&) = delete;
  ~ContainerRoot() { detach(); }

  // kBadInput when `container_path` resolves, inside the root, to the root itself (a
  // symlink to "../.." or "/") or to something that is not a directory. A path that does
  // not exist yet is fine: it will be made below the root.
  Expected<void> check_mount_point(const std::string& container_path) const;
  // Whether the container can execute `program` (args[0]; without a slash, looked up in
  // `search_path`): ENOENT when there is no such file, EACCES when it is not executable.
  Result<void> find_program(const std::string& program,
                            const std::vector<std::string>& search_path) const;

  // Attach the root at `target` (an empty directory: the bundle's rootfs/).
  Expected<void> attach(const std::string& target);
  // Make the directories `paths` inside the attached root (missing ones, with open_dir_in_root:
  // no symlink in the root leads out of it); the same refusal as check_mount_point.
  Expected<void> make_mount_points(const std::vector<std::string>& paths);
  // Take the root out of the host's mount table (lazily: the container keeps its copy).
  void detach() noexcept;

 private:
  ContainerRoot() = default;
  UniqueFd tree_;  // the clone: what the checks resolve against
  UniqueFd root_;  // the overlay over tree_ (host's root only); else tree_ is attached
  std::string attached_;
};

}  // namespace hostchanfs::mountctl
