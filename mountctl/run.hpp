// `hostchanfs run --host-channel SPEC [--rootfs DIR] [--user U[:G]] -- CMD...`: the
// embedded default container. CMD runs in its own mount, pid, ipc and uts namespaces with
// the host's root read-only (or DIR via pivot_root) and each channel bound in; when CMD
// ends its channels are removed; the exit status is CMD's; signals reach CMD.
#pragma once

#include <string>
#include <vector>

namespace hostchanfs::mountctl {

// What `run` was asked (cli/ fills it from the flags); nothing is checked yet.
struct RunRequest {
  std::vector<std::string> specs;  // --host-channel, as given
  std::string rootfs;              // "": the host's / (read-only)
  std::string user;                // "": root; else U[:G], ids or names
  std::vector<std::string> command;
  std::string run_dir;             // the controller's
};

// The whole command: checks everything, then creates the channels, runs the container
// and removes the channels. Returns CMD's exit status, or 2 (bad input, nothing made) / 1
// with one line on stderr.
int run_main(const RunRequest& request);

}  // namespace hostchanfs::mountctl
