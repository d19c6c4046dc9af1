#include "cli/cli.hpp"

#include <CLI/CLI.hpp>

#include "cli/command.hpp"
#include "sys/exit_status.hpp"

namespace hostchanfs::cli {

int run(int argc, char** argv) {
  CLI::App app{"hostchanfs: memory-backed channels shared between a container and its host"};
  app.require_subcommand(1);
  int exit_code = kExitOk;
  add_serve_command(app, exit_code);
  add_channel_commands(app, exit_code);
  add_oci_hook_command(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  return exit_code;
}

}  // namespace hostchanfs::cli
