// The controller's run dir (default /run/hostchanfs): where its files are, how it is made,
// and how one controller takes it for itself.
//
//   run_dir/controller.lock   flock: one controller per run dir
//   run_dir/controller.sock   root-only socket, JSON lines (protocol.hpp)
//   run_dir/controller.pid    its pid
//   run_dir/controller.log    its log and its daemons' (when started on demand)
//   run_dir/channels/*.json   the registry: one file per channel (registry.hpp)
#pragma once

#include <string>

#include "mountctl/error.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::mountctl {

inline constexpr const char* kBuiltinRunDir = "/run/hostchanfs";

// kBuiltinRunDir, or $HOSTCHANFS_RUN_DIR when set (tests use a private one).
std::string default_run_dir();

std::string socket_path(const std::string& run_dir);
std::string lock_path(const std::string& run_dir);
std::string pid_path(const std::string& run_dir);
std::string log_path(const std::string& run_dir);
std::string registry_dir(const std::string& run_dir);

// Made root-only (0700), its missing parents 0755. kBadInput for a relative path.
Expected<void> make_run_dir(const std::string& run_dir);

// Take the run dir for this process: its lock, held as long as the returned descriptor
// is open, and the pid file. kAlreadyRunning when another controller holds it.
Expected<UniqueFd> claim_run_dir(const std::string& run_dir);

}  // namespace hostchanfs::mountctl
