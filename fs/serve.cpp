#include "fs/serve.hpp"

#include <fcntl.h>

#include <cstdio>
#include <string>

#include "cli/command.hpp"
#include "fs/session.hpp"
#include "shm/store.hpp"
#include "sys/size.hpp"

namespace hostchanfs::fs {

namespace {

bool fd_is_open(int fd) { return fd >= 0 && ::fcntl(fd, F_GETFD) >= 0; }

// One line for people on stderr; returns the usage exit status.
int refuse(const std::string& why) {
  std::fprintf(stderr, "hostchanfs serve: %s\n", why.c_str());
  return cli::kExitUsage;
}

struct ServeArgs {
  std::string size;
  std::uint64_t inodes = 0;
  std::string cache = "exact";
  ServeOptions options;
};

int run_serve(ServeArgs& a) {
  ServeOptions& o = a.options;
  auto size = parse_size(a.size);
  if (!size)
    return refuse("--size '" + a.size + "' is not a size: give bytes or a k/m/g suffix, e.g. 32M");
  if (size.value() < shm::kPageSize)
    return refuse("--size '" + a.size + "' is below one 4 KiB page: give at least 4k");
  o.size_bytes = size.value();
  o.max_inodes = a.inodes;
  o.writeback_cache = a.cache == "writeback";
  for (auto [flag, fd] : {std::pair{"--ready-fd", o.ready_fd}, std::pair{"--fuse-fd", o.fuse_fd},
                          std::pair{"--meta-fd", o.meta_fd}, std::pair{"--data-fd", o.data_fd}}) {
    if (fd != -1 && !fd_is_open(fd))
      return refuse(std::string(flag) + " " + std::to_string(fd) + " is not an open descriptor");
  }
  if ((o.meta_fd < 0) != (o.data_fd < 0))
    return refuse("--meta-fd and --data-fd go together: give both or neither");
  if (o.fuse_fd < 0) {
    if (auto why = refuse_mountpoint(o.mountpoint)) return refuse(*why);
  }
  return serve(o);
}

}  // namespace

void add_serve_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<ServeArgs>();
  auto* cmd = app.add_subcommand("serve", "Run one channel's FUSE daemon in the foreground");
  cmd->add_option("--size", args->size, "Byte quota (bytes, or with a k/m/g suffix: 32M)")->required();
  cmd->add_option("--inodes", args->inodes, "Inode limit (default: one per 4 KiB page, at least 1024)");
  cmd->add_option("--uid", args->options.uid, "Owner of the root directory");
  cmd->add_option("--gid", args->options.gid, "Group of the root directory");
  cmd->add_option("--ready-fd", args->options.ready_fd,
                  "Write \"ready\\n\" to this descriptor once mounted, then close it");
  cmd->add_option("--fuse-fd", args->options.fuse_fd,
                  "An open /dev/fuse the caller has already mounted");
  cmd->add_option("--meta-fd", args->options.meta_fd, "The store's metadata memfd");
  cmd->add_option("--data-fd", args->options.data_fd, "The store's data memfd");
  cmd->add_option("--cache", args->cache,
                  "exact (default): ENOSPC at the write that crosses the quota, as tmpfs; "
                  "writeback: small writes are gathered by the kernel, faster, but ENOSPC "
                  "then surfaces at fsync/close")
      ->check(CLI::IsMember({"exact", "writeback"}));
  cmd->add_option("mountpoint", args->options.mountpoint, "Where to mount (an empty directory)")
      ->required();
  cmd->callback([args, &exit_code] { exit_code = run_serve(*args); });
}

}  // namespace hostchanfs::fs
