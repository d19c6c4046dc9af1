// The flags of `hostchanfs serve` (fs/serve.hpp).
#include <memory>

#include "cli/command.hpp"
#include "fs/serve.hpp"

namespace hostchanfs::cli {

void add_serve_command(CLI::App& app, int& exit_code) {
  struct Flags {
    fs::ServeRequest request;
    std::string cache = "exact";
  };
  auto flags = std::make_shared<Flags>();
  fs::ServeOptions& o = flags->request.options;
  auto* cmd = app.add_subcommand("serve", "Run one channel's FUSE daemon in the foreground");
  cmd->add_option("--size", flags->request.size, "Byte quota (bytes, or with a k/m/g suffix: 32M)")->required();
  cmd->add_option("--inodes", flags->request.inodes, "Inode limit (default: one per 4 KiB page, at least 1024)")
      ->check(kWholeNumber);
  cmd->add_option("--uid", o.uid, "Owner of the root directory")->check(kWholeNumber);
  cmd->add_option("--gid", o.gid, "Group of the root directory")->check(kWholeNumber);
  cmd->add_option("--ready-fd", o.ready_fd,
                  "Write \"ready\\n\" to this descriptor once mounted, then close it");
  cmd->add_option("--fuse-fd", o.fuse_fd, "An open /dev/fuse the caller has already mounted");
  cmd->add_option("--fuse-clone-fds", o.fuse_clone_fds,
                  "Clones of --fuse-fd, one per worker thread, that outlive this daemon "
                  "(comma-separated; the keeper's)")
      ->delimiter(',');
  cmd->add_option("--meta-fd", o.meta_fd, "The store's metadata memfd");
  cmd->add_option("--data-fd", o.data_fd, "The store's data memfd");
  cmd->add_option("--session-fd", o.session_fd,
                  "The connection's session record (a memfd): the INIT is kept there, and a daemon "
                  "that follows another one on the connection resumes it");
  cmd->add_option("--metrics-fd", o.metrics_fd, "The controller's request counters (a memfd)");
  cmd->add_option("--cache", flags->cache,
                  "exact (default): ENOSPC at the write that crosses the quota, as tmpfs; "
                  "writeback: small writes are gathered by the kernel, faster, but ENOSPC "
                  "then surfaces at fsync/close")
      ->check(CLI::IsMember({"exact", "writeback"}));
  add_charge_option(cmd, flags->request.charge);
  cmd->add_option("--backing-fd", o.backing_fd, "--charge writer: the root of the backing tmpfs (controller)");
  cmd->add_option("mountpoint", o.mountpoint, "Where to mount (an empty directory)")->required();
  cmd->callback([flags, &exit_code] {
    flags->request.writeback_cache = flags->cache == "writeback";
    exit_code = fs::serve_main(flags->request);
  });
}

}  // namespace hostchanfs::cli
