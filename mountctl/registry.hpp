// The registry: one JSON file per channel in <run dir>/channels, rewritten (atomically, by
// rename) whenever the controller changes a channel. It is how a controller that was
// killed is replaced without losing its channels: the next one loads every record and
// adopts each channel whose daemon still serves it.
#pragma once

#include <string>
#include <vector>

#include "mountctl/channel.hpp"
#include "mountctl/error.hpp"
#include "mountctl/protocol.hpp"

namespace hostchanfs::mountctl {

// A channel's record, and the channel it describes (descriptors are not in a record).
json channel_record(const Channel& channel);
Channel channel_from_record(const json& record);  // throws json::exception

// Whether a controller left channels behind in `run_dir` (connect_if_channels asks).
bool registry_has_channels(const std::string& run_dir);

class Registry {
 public:
  explicit Registry(const std::string& run_dir);

  // Makes the registry's directory (root-only).
  Expected<void> make_dir() const;
  // Writes the channel's record; a failure is logged (the channel still works, only a
  // replacement controller would not know it).
  void save(const Channel& channel) const;
  void forget(const std::string& host_path) const;

  // Every channel a previous controller left. Adopted when its daemon still runs and
  // serves its host path: the daemon's descriptors (the FUSE connection, the store's
  // memfds) are taken back with pidfd_getfd and the channel is running; otherwise it is
  // failed (`umount` cleans it up). An owner that asked to be watched gets a pidfd again
  // (empty when it has died meanwhile). A record that cannot be read is logged and skipped.
  std::vector<Channel> load() const;

 private:
  std::string dir_;
};

}  // namespace hostchanfs::mountctl
