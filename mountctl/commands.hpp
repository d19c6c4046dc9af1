// The channel commands as library functions, one per subcommand: `cli/` parses the flags
// into these requests and calls them; tests may call them in-process. Each prints what the
// command prints and every refusal as one line on stderr, and returns the exit status:
// 0 done, 2 bad input (nothing was changed), 1 a system error.
#pragma once

#include <string>

#include "mountctl/protocol.hpp"

namespace hostchanfs::mountctl {

// `hostchanfs mount SPEC [--uid U --gid G] [--inodes N]`: create the channel, print the
// `--mount` flag and the OCI `mounts` entry to hand to an engine.
struct MountRequest {
  std::string spec;  // as given
  ChannelOptions options;
  std::string run_dir;
};
int mount_main(const MountRequest& request);

// The `--mount` flag `mount` prints for podman and docker, as one shell word: its value is
// a CSV record as the engines read it (a field holding a comma or a quote is quoted), so a
// host path such as "/tmp/a,dst=/etc" stays one source and adds no option.
std::string mount_flag(const ChannelSpec& spec);

// `hostchanfs umount HOST_PATH`: remove the channel (lazily if busy) and its host path.
struct UmountRequest {
  std::string host_path;  // as given
  std::string run_dir;
};
int umount_main(const UmountRequest& request);

// `hostchanfs ls [--json]`: every channel with its usage and daemon state.
struct LsRequest {
  bool json = false;
  std::string run_dir;
};
int ls_main(const LsRequest& request);

// `hostchanfs controller --run-dir DIR [--metrics-listen HOST:PORT]`: the controller in the
// foreground (controller.hpp).
struct ControllerRequest {
  std::string run_dir;
  std::string metrics_listen;  // "": no HTTP endpoint
};
int controller_main(const ControllerRequest& request);

// `hostchanfs metrics`: the Prometheus text exposition of every channel, once
// (mountctl/metrics.hpp). With no controller running, the exposition of no channel.
struct MetricsCommandRequest {
  std::string run_dir;
};
int metrics_main(const MetricsCommandRequest& request);

}  // namespace hostchanfs::mountctl
