// The controller: one per run dir (default /run/hostchanfs), owning every channel.
//
//   run_dir/controller.lock   flock: one controller per run dir
//   run_dir/controller.sock   root-only socket (SO_PEERCRED uid 0), JSON lines (protocol.hpp)
//   run_dir/controller.pid    its pid
//   run_dir/controller.log    its log and its daemons' (when started on demand)
//   run_dir/channels/*.json   the registry: one file per channel
//
// One thread, one epoll loop: the socket and its connections, a signalfd (SIGTERM or
// SIGINT tear every channel down and exit), and pidfds of every daemon (a death marks
// its channel failed) and of owners that asked for it (a death removes their channel).
#pragma once

#include <string>

namespace hostchanfs::mountctl {

// Runs the controller of `run_dir` until SIGTERM/SIGINT. Returns the exit status; 0 also
// when another controller already owns `run_dir`.
int run_controller(const std::string& run_dir);

}  // namespace hostchanfs::mountctl
