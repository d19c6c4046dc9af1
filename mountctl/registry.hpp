// The registry: one JSON file per channel in <run dir>/registry, rewritten (atomically, by
// rename) whenever the controller changes a channel. It is how a controller that was
// killed is replaced without losing its channels: the next one loads every record and
// adopts each channel whose keeper still holds it.
//
// A record's file name is a hash of its host path (a name-based UUID, SHA-1), so that any
// host path has one, however long; the path itself is inside the record. The descriptor
// numbers it records are those in the holder's own table (channel.hpp: DescriptorHolder),
// never the controller's, so that they stay right across any number of restarts; what is
// taken back is checked to be what the record says (/dev/fuse, the store's memfds by name
// and inode) before it is used.
#pragma once

#include <string>
#include <vector>

#include "mountctl/channel.hpp"
#include "mountctl/error.hpp"
#include "mountctl/protocol.hpp"
#include "mountctl/run_dir.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::mountctl {

// A channel's record, and the channel it describes (descriptors are not in a record).
json channel_record(const Channel& channel);
Channel channel_from_record(const json& record);  // throws json::exception

// The record file name of the channel at `host_path` ("<uuid>.json").
std::string record_name(const std::string& host_path);

// Whether a controller left channels behind in `run_dir` (connect_if_channels asks).
bool registry_has_channels(const std::string& run_dir);

class Registry {
 public:
  Registry() = default;
  // The registry of `run_dir`, its directory made when missing.
  static Expected<Registry> open(const RunDir& run_dir);

  // Writes the channel's record; a failure is logged (the channel still works, only a
  // replacement controller would not know it).
  void save(const Channel& channel) const;
  void forget(const std::string& host_path) const;

  // Every channel a previous controller left. Adopted when its keeper still runs, keeps
  // its host path and holds what the record says: the descriptors (the FUSE connection,
  // the store's memfds, the session record) are taken back with pidfd_getfd, checked, and the channel is
  // running; otherwise it is failed (`umount` cleans it up). An owner that asked to be
  // watched gets a pidfd again (empty when it has died meanwhile). A record that cannot be
  // read, or whose name is not its host path's, is logged and skipped.
  std::vector<Channel> load() const;

 private:
  Registry(std::string path, UniqueFd dir) : path_(std::move(path)), dir_(std::move(dir)) {}
  std::string path_;
  UniqueFd dir_;
};

}  // namespace hostchanfs::mountctl
