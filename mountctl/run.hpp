// `hostchanfs run --host-channel SPEC [--rootfs DIR] [--user U[:G]] [--memory N]
// [--runtime PATH] [--userns host] -- CMD...`: the embedded container, on a real OCI
// runtime (oci_runtime.hpp) with its default profile (run_bundle.hpp), the root of
// run_root.hpp and the seccomp filter of run_seccomp.hpp.
//
// In order: everything given is checked (nothing is made before: a container path that
// resolves to the root, a CMD the root lacks, a bad size, user or runtime are refused with
// one line); the channel is created through the controller, owned by
// "oci:<container id>" and by our pid (the controller removes it if we die); the bundle is
// written, with the annotation io.hostchanfs.channel and this binary's `oci-hook` as the
// createRuntime and poststop hooks, so that the runtime binds the channel by the engines'
// own path; then `create` (our stdio is the container's), `start`, and we wait for the
// container's process (we are its subreaper), passing SIGHUP, SIGINT, SIGQUIT, SIGTERM,
// SIGUSR1, SIGUSR2, SIGWINCH and SIGCONT on to it; `delete` runs poststop, which removes
// the channel. The exit status is CMD's (128 + N when a signal N ended it).
//
// Losing the controller (its connection closes) stops the container: exit 1, its channel
// removed (by a new controller that takes the registry over). A runtime that fails
// (create, start) exits 1 the same way. Whatever ends us, the bundle, the container and
// the channel go: on our own paths by RAII, and when we are killed by RunGuard.
#pragma once

#include <string>
#include <vector>

#include "fs/charge.hpp"

namespace hostchanfs::mountctl {

// What `run` was asked (cli/ fills it from the flags); nothing is checked yet.
struct RunRequest {
  std::vector<std::string> specs;  // --host-channel, as given (one)
  std::string rootfs;              // "": the host's / (read-only, not recursive)
  std::string user;                // "": root; else U[:G], ids or names
  std::string memory;              // "": no limit; else a size (24M)
  std::string runtime;             // "": crun where it can run, else runc
  std::string userns;              // "" or "private": a user namespace; "host": none
  fs::Charge charge = fs::Charge::kChannel;  // --charge
  std::vector<std::string> command;
  std::string run_dir;             // the controller's
};

// The whole command. Returns CMD's exit status, or 2 (bad input, nothing made), 126/127
// (CMD cannot be executed / is not in the root) or 1 (a failure; what was made is undone)
// with one line on stderr.
int run_main(const RunRequest& request);

}  // namespace hostchanfs::mountctl
