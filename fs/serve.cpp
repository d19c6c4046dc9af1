#include "fs/serve.hpp"

namespace hostchanfs::fs {

void add_serve_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("serve", "Run one channel's FUSE daemon in the foreground");
  cmd->callback([&exit_code] { exit_code = 1; });
}

}  // namespace hostchanfs::fs
