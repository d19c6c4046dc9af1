// The controller: one per run dir (run_dir.hpp: default /run/hostchanfs), owning every
// channel. Its parts:
//   controller.cpp  the event loop and the dispatch of requests (protocol.hpp)
//   peer.cpp        who may ask (root in the controller's mount namespace)
//   registry.cpp    the channels' records on disk, loaded and adopted at start
//   channel.cpp     starting and stopping one channel
//   bundle_watch.cpp  containers' bundle directories, watched for their deletion
//   metrics.cpp     the channels' Prometheus metrics (the `metrics` op, --metrics-listen)
//
// One thread, one epoll loop: the socket and its connections, a signalfd (SIGTERM or
// SIGINT tear every channel down and exit), and pidfds of every daemon (a death marks
// its channel failed) and of owners that asked for it (a death removes their channel).
#pragma once

#include <string>

namespace hostchanfs::mountctl {

struct ControllerOptions {
  // Serve the metrics (mountctl/metrics.hpp) at http://<this>/metrics; "": do not.
  std::string metrics_listen;
};

// Runs the controller of `run_dir` until SIGTERM/SIGINT. Returns the exit status; 0 also
// when another controller already owns `run_dir`.
int run_controller(const std::string& run_dir, const ControllerOptions& options = {});

}  // namespace hostchanfs::mountctl
