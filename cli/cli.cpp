#include "cli/cli.hpp"

#include <CLI/CLI.hpp>

#include "cli/command.hpp"
#include "mountctl/text.hpp"
#include "sys/exit_status.hpp"

namespace hostchanfs::cli {

int run(int argc, char** argv) {
  CLI::App app{"hostchanfs: memory-backed channels shared between a container and its host"};
  app.require_subcommand(1);
  // A usage error is one line, as every other refusal (CLI11's own adds a second one).
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return "hostchanfs: " + mountctl::printable(e.what()) + " (see --help)\n";
  });
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
