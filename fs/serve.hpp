// `hostchanfs serve`: one channel's daemon in the foreground, as a library call (cli/
// parses the flags into a ServeRequest; tests may call serve_main in-process).
#pragma once

#include <cstdint>
#include <string>

#include "fs/session.hpp"

namespace hostchanfs::fs {

// `serve --size N [--inodes N] [--uid U --gid G] [--cache exact|writeback] [--ready-fd FD]
//        [--charge channel|writer] [--fuse-fd FD [--meta-fd FD --data-fd FD] [--session-fd FD]
//        [--backing-fd FD]] [--metrics-fd FD] MOUNTPOINT`
struct ServeRequest {
  std::string size;  // --size as given: bytes, or with a k/m/g suffix
  std::uint64_t inodes = 0;
  bool writeback_cache = false;  // --cache writeback
  Charge charge = Charge::kChannel;  // --charge
  // Ids, descriptors and the mount point; serve_main fills in the size, inodes and cache.
  ServeOptions options;
};

// Checks the request and serves (fs/session.hpp). A bad size, a descriptor that is not
// open, --meta-fd without --data-fd, or a mount point that is missing, not a directory or
// already a mount, --charge writer where passthrough cannot work (or with --cache
// writeback, which passthrough excludes), --backing-fd without --charge writer is refused with one line on stderr ("hostchanfs serve: ...") and exit
// status 2, before anything is created. Returns the exit status.
int serve_main(const ServeRequest& request);

}  // namespace hostchanfs::fs
