// A channel's keeper (`hostchanfs keep`), in the manner of conmon: one small process per
// channel that holds the FUSE connection (/dev/fuse), the store's memfds and the session
// record, does no request work, and restarts the channel's `serve` daemon on them as
// soon as it dies (its pidfd becomes readable). The kernel keeps every request the dead
// daemon had read pending while a /dev/fuse descriptor is open, and the next daemon has
// them resent (fs/session_resume.hpp): no caller sees the death.
//
// The keeper is the controller's child, and outlives it: a replacement controller finds it
// by the registry (its pid, and the descriptor numbers in its table, kKeeperFds) and
// takes the descriptors back with pidfd_getfd. The keeper watches its controller (a
// pidfd), and when it dies starts the next one at once (the first keeper to try wins the
// run dir's lock), so that a keeper that dies later still has a controller to replace
// it. A keeper that dies takes its daemon with it
// (PR_SET_PDEATHSIG), and the controller starts another keeper on the descriptors it
// holds; the new daemon resumes the connection the same way.
#pragma once

#include <string>
#include <vector>

namespace hostchanfs::mountctl {

// `keep --session-fd FD [--ready-fd FD] -- serve ARGS...`
struct KeeperRequest {
  int session_fd = -1;  // the session record (the generation is counted there)
  int ready_fd = -1;    // handed to the first daemon only (serve --ready-fd)
  std::string run_dir;  // the controller's; empty: the controller is not watched
  std::vector<std::string> serve_args;  // starts with "serve"; the last is the mount point
};

// Runs the keeper in the foreground until its daemon exits by itself (the connection
// ended: unmounted; or it refused to serve) or the keeper is told to stop (SIGTERM,
// SIGINT, SIGHUP: passed on to the daemon). A daemon killed by a signal is restarted at
// once. The exit status is the last daemon's (0 after an unmount or a stop).
int keep_main(const KeeperRequest& request);

}  // namespace hostchanfs::mountctl
