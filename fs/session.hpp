// One channel's daemon: a store, served through a FUSE session on a mount point, until
// it is unmounted or told to stop (SIGTERM, SIGINT, SIGHUP).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fs/charge.hpp"

namespace hostchanfs::fs {

struct ServeOptions {
  std::uint64_t size_bytes = 0;
  std::uint64_t max_inodes = 0;  // 0: the store's default
  uid_t uid = 0;                 // owner of the root directory
  gid_t gid = 0;
  int ready_fd = -1;  // gets "ready\n" (then is closed) once mounted and about to serve
  // Handed over by the controller: an open /dev/fuse already mounted by it, and the
  // store's memfds (empty: format them; formatted: attach). -1: serve does it itself.
  int fuse_fd = -1;
  int meta_fd = -1;
  int data_fd = -1;
  // The session record (fs/session_record.hpp) the channel's keeper holds: the INIT is
  // kept there, and a daemon that is not the connection's first resumes it
  // (fs/session_resume.hpp). -1: none.
  int session_fd = -1;
  // The keeper's clones of `fuse_fd`, one per worker (fs/session_clones.hpp). Empty: a
  // daemon without a session record makes its own, one with a record reads `fuse_fd`.
  std::vector<int> fuse_clone_fds;
  // The controller's request counters (fs/metrics.hpp); -1: none are kept.
  int metrics_fd = -1;
  std::string mountpoint;
  // Opt-in: the kernel's writeback cache. Small writes gather in the page cache and reach
  // the store in large pieces, but ENOSPC then surfaces at fsync/close (when the cache is
  // written back), not at the write that crosses the quota. Never the default.
  bool writeback_cache = false;
  // Who pays for file data (fs/charge.hpp). writer: `backing_fd` is the root of the
  // private backing tmpfs the controller made and holds (-1: serve makes its own).
  Charge charge = Charge::kChannel;
  int backing_fd = -1;
};

// Why `path` cannot take a new mount (missing, not a directory, already a mount), as
// one line for people; nullopt when it can.
std::optional<std::string> refuse_mountpoint(const std::string& path);

// Runs the daemon in the foreground; returns the process exit status (0 after a clean
// stop or an unmount from outside, 1 when something failed).
int serve(const ServeOptions& options);

}  // namespace hostchanfs::fs
