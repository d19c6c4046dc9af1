#include "fs/serve.hpp"

#include <fcntl.h>

#include <string>
#include <utility>

#include "fs/passthrough.hpp"
#include "shm/store.hpp"
#include "sys/exit_status.hpp"
#include "sys/size.hpp"

namespace hostchanfs::fs {

namespace {

bool fd_is_open(int fd) { return fd >= 0 && ::fcntl(fd, F_GETFD) >= 0; }

int refuse(const std::string& why) { return print_error("hostchanfs serve", why, kExitUsage); }

}  // namespace

int serve_main(const ServeRequest& request) {
  ServeOptions o = request.options;
  auto size = parse_size(request.size);
  if (!size)
    return refuse("--size '" + request.size + "' is not a size: give bytes or a k/m/g suffix, e.g. 32M");
  if (size.value() < shm::kPageSize)
    return refuse("--size '" + request.size + "' is below one 4 KiB page: give at least 4k");
  o.size_bytes = size.value();
  o.max_inodes = request.inodes;
  o.writeback_cache = request.writeback_cache;
  o.charge = request.charge;
  if (o.charge == Charge::kWriter) {
    if (o.writeback_cache)
      return refuse("--charge writer and --cache writeback exclude each other: the kernel passes writes "
                    "straight to the backing tmpfs; drop --cache writeback");
    if (auto why = refuse_writer_charge()) return refuse(*why);
  } else if (o.backing_fd != -1) {
    return refuse("--backing-fd goes with --charge writer only");
  }
  for (auto [flag, fd] : {std::pair{"--ready-fd", o.ready_fd}, std::pair{"--fuse-fd", o.fuse_fd},
                          std::pair{"--meta-fd", o.meta_fd}, std::pair{"--data-fd", o.data_fd},
                          std::pair{"--session-fd", o.session_fd}, std::pair{"--backing-fd", o.backing_fd},
                          std::pair{"--metrics-fd", o.metrics_fd}}) {
    if (fd != -1 && !fd_is_open(fd))
      return refuse(std::string(flag) + " " + std::to_string(fd) + " is not an open descriptor");
  }
  for (int fd : o.fuse_clone_fds) {
    if (!fd_is_open(fd))
      return refuse("--fuse-clone-fds: " + std::to_string(fd) + " is not an open descriptor");
  }
  if (!o.fuse_clone_fds.empty() && o.fuse_fd < 0)
    return refuse("--fuse-clone-fds goes with --fuse-fd: they are clones of the connection it holds");
  if ((o.meta_fd < 0) != (o.data_fd < 0))
    return refuse("--meta-fd and --data-fd go together: give both or neither");
  if (o.fuse_fd < 0) {
    if (auto why = refuse_mountpoint(o.mountpoint)) return refuse(*why);
  }
  return serve(o);
}

}  // namespace hostchanfs::fs
