// Containers' bundle directories, watched for their deletion: how the controller learns
// that an engine which calls poststop at every stop (podman) has deleted a container.
// podman's bundle is the container's own directory in its storage
// (<graph root>/<driver>-containers/<id>/userdata), made at `podman create` and deleted at
// `podman rm`, whether the container ever ran or not; runc's and crun's bundle is the
// user's, and outlives the container (poststop at `delete` is their signal).
//
// One inotify descriptor for all of them (IN_DELETE_SELF; IN_IGNORED also comes when the
// file system under it is unmounted): the controller polls it in its event loop. A
// directory is recognised by device and inode, so that a bundle removed and made again
// while no controller ran is not taken for the old one.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mountctl/error.hpp"
#include "sys/dirs.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::mountctl {

class BundleWatch {
 public:
  // Who watches a bundle: a channel (its host path) and its member.
  using Key = std::pair<std::string, std::string>;

  static Expected<BundleWatch> open();
  int fd() const noexcept { return inotify_.get(); }

  // Watch the directory `bundle` for `key`. Its identity, or kNotFound when it is not there
  // or (with `expect`) is another directory than the one recorded.
  Expected<FileId> add(const std::string& bundle, const Key& key,
                       std::optional<FileId> expect = std::nullopt);
  // Stop watching for `key` (a channel removed by hand).
  void remove(const Key& key);
  // Reads what the kernel reported: the keys whose bundle has gone (each once).
  std::vector<Key> gone();

 private:
  struct Watched {
    std::string path;
    FileId id;
    std::vector<Key> keys;
  };
  explicit BundleWatch(UniqueFd fd) : inotify_(std::move(fd)) {}
  std::vector<Key> recheck_all();  // after a queue overflow
  UniqueFd inotify_;
  std::map<int, Watched> watched_;  // by watch descriptor
};

}  // namespace hostchanfs::mountctl
