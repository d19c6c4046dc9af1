// Who may talk to the controller: root in the controller's own mount namespace, nobody
// else. A container's root (which may see the socket through a bind) must not create or
// remove host mounts, and a client in another mount namespace would not see the channels
// it asked for.
#pragma once

#include <sys/socket.h>

#include <string>

#include "mountctl/error.hpp"

namespace hostchanfs::mountctl {

// The credentials of the process at the other end of a Unix socket (SO_PEERCRED).
ucred peer_of(int socket_fd);

// kRefused, with a one-line reason (and a warning in the log), for a peer the controller
// of `run_dir` does not serve.
Expected<void> authorize_peer(const ucred& peer, const std::string& run_dir);

}  // namespace hostchanfs::mountctl
