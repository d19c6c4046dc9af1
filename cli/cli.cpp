#include "cli/cli.hpp"

#include <CLI/CLI.hpp>

#include "cli/command.hpp"
#include "fs/serve.hpp"
#include "mountctl/commands.hpp"
#include "mountctl/oci_hook.hpp"

namespace hostchanfs::cli {

int run(int argc, char** argv) {
  CLI::App app{"hostchanfs: memory-backed channels shared between a container and its host"};
  app.require_subcommand(1);
  int exit_code = kExitOk;
  fs::add_serve_command(app, exit_code);
  mountctl::add_commands(app, exit_code);
  mountctl::add_oci_hook_command(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }
  return exit_code;
}

}  // namespace hostchanfs::cli
