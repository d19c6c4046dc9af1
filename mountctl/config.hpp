// The operator's settings, in a JSON file only root can change (root_owned.hpp): by default
// /etc/hostchanfs/config.json, or $HOSTCHANFS_CONFIG (`oci-hook --config FILE`). Today
// one setting: where the channels the OCI hook makes may be.
//
//   {"hook_channel_root": "/run/hostchanfs/channels"}
//
// A channel made through the io.hostchanfs.channel annotation has its host path chosen by
// whoever writes the container's spec (in Kubernetes, any pod author), so the hook makes it
// only below this root; "/" lets every spec author choose any host path. A missing file
// means the defaults.
#pragma once

#include <string>

#include "mountctl/error.hpp"

namespace hostchanfs::mountctl {

inline constexpr const char* kDefaultConfigPath = "/etc/hostchanfs/config.json";
inline constexpr const char* kDefaultHookChannelRoot = "/run/hostchanfs/channels";

struct Config {
  std::string hook_channel_root = kDefaultHookChannelRoot;  // absolute, clean
};

// $HOSTCHANFS_CONFIG, or kDefaultConfigPath.
std::string default_config_path();

// The settings in `path`, or the defaults when it does not exist. kBadInput, one line, for
// a file that is not root's own (or is reached through a symlink or a directory others
// can change), is not JSON, or holds an unknown key or a bad value.
Expected<Config> read_config(const std::string& path);

}  // namespace hostchanfs::mountctl
