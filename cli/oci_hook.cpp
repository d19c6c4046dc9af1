// The flags of `hostchanfs oci-hook` (mountctl/oci_hook.hpp).
#include <memory>

#include "cli/command.hpp"
#include "mountctl/config.hpp"
#include "mountctl/oci_hook.hpp"
#include "mountctl/run_dir.hpp"

namespace hostchanfs::cli {

void add_oci_hook_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "oci-hook",
      "OCI runtime hook (createRuntime and poststop): gives a container the channel named by "
      "its annotation io.hostchanfs.channel; reads the container state on stdin");
  auto request = std::make_shared<mountctl::OciHookRequest>();
  request->run_dir = mountctl::default_run_dir();
  request->config_path = mountctl::default_config_path();
  cmd->add_option("--run-dir", request->run_dir, "The controller's directory (socket, registry)");
  cmd->add_option("--config", request->config_path,
                  "The operator's configuration: where hook-made channels may be (default "
                  "/etc/hostchanfs/config.json, or $HOSTCHANFS_CONFIG)");
  cmd->callback([&exit_code, request] { exit_code = mountctl::oci_hook_main(*request); });
}

}  // namespace hostchanfs::cli
