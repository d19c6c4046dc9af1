// The flags of the channel commands: controller, mount, umount, ls, metrics, run
// (mountctl/commands.hpp, mountctl/run.hpp).
#include <memory>
#include <string>

#include "cli/command.hpp"
#include "mountctl/commands.hpp"
#include "mountctl/keeper.hpp"
#include "mountctl/run.hpp"
#include "mountctl/run_dir.hpp"

namespace hostchanfs::cli {

namespace {

using RunDir = std::shared_ptr<std::string>;

// A subcommand that hostchanfs runs itself, hidden from the main --help.
CLI::App* add_internal(CLI::App& app, const char* name, const char* description) {
  auto* cmd = app.add_subcommand(name, description);
  cmd->group("");
  return cmd;
}

void add_controller(CLI::App& app, int& exit_code) {
  auto* cmd = add_internal(app, "controller",
                           "Run the channel controller in the foreground (internal: the other "
                           "commands start it on demand)");
  auto request = std::make_shared<mountctl::ControllerRequest>();
  request->run_dir = mountctl::default_run_dir();
  cmd->add_option("--run-dir", request->run_dir, "The controller's directory (socket, registry)");
  cmd->add_option("--metrics-listen", request->metrics_listen,
                  "Also serve Prometheus metrics at http://HOST:PORT/metrics (default: off; "
                  "e.g. 127.0.0.1:9464)");
  cmd->callback([&exit_code, request] { exit_code = mountctl::controller_main(*request); });
}

void add_metrics(CLI::App& app, int& exit_code, RunDir run_dir) {
  auto* cmd = app.add_subcommand(
      "metrics", "Print every channel's metrics once, in the Prometheus text format (usage, "
                 "quota, requests by operation, errors by errno, latency, daemon state)");
  auto request = std::make_shared<mountctl::MetricsCommandRequest>();
  cmd->callback([&exit_code, request, run_dir] {
    request->run_dir = *run_dir;
    exit_code = mountctl::metrics_main(*request);
  });
}

void add_mount(CLI::App& app, int& exit_code, RunDir run_dir) {
  auto* cmd = app.add_subcommand(
      "mount", "Create a channel: mount it at the host path and print the bind mount to hand "
               "to a container engine");
  auto request = std::make_shared<mountctl::MountRequest>();
  cmd->add_option("SPEC", request->spec, "<host path>:<container path>:<rw|ro>:<size>")->required();
  cmd->add_option("--uid", request->options.uid, "Owner uid of the channel root (default 0)")
      ->check(kWholeNumber);
  cmd->add_option("--gid", request->options.gid, "Owner gid of the channel root (default 0)")
      ->check(kWholeNumber);
  cmd->add_option("--inodes", request->options.max_inodes, "Inode limit (default: one per 4 KiB of size)")
      ->check(kWholeNumber);
  add_charge_option(cmd, request->options.charge);
  cmd->callback([&exit_code, request, run_dir] {
    request->run_dir = *run_dir;
    exit_code = mountctl::mount_main(*request);
  });
}

void add_umount(CLI::App& app, int& exit_code, RunDir run_dir) {
  auto* cmd = app.add_subcommand(
      "umount", "Remove a channel: unmount it (lazily if busy) and delete the host path");
  auto request = std::make_shared<mountctl::UmountRequest>();
  cmd->add_option("HOST_PATH", request->host_path, "The channel's host path")->required();
  cmd->callback([&exit_code, request, run_dir] {
    request->run_dir = *run_dir;
    exit_code = mountctl::umount_main(*request);
  });
}

void add_ls(CLI::App& app, int& exit_code, RunDir run_dir) {
  auto* cmd = app.add_subcommand("ls", "List every channel with its usage and daemon state");
  auto request = std::make_shared<mountctl::LsRequest>();
  cmd->add_flag("--json", request->json, "Print a JSON array instead of a table");
  cmd->callback([&exit_code, request, run_dir] {
    request->run_dir = *run_dir;
    exit_code = mountctl::ls_main(*request);
  });
}

void add_keep(CLI::App& app, int& exit_code) {
  auto* cmd = add_internal(app, "keep",
                           "Hold a channel's connection and memory and restart its daemon when it "
                           "dies (internal: the controller starts one per channel)");
  auto request = std::make_shared<mountctl::KeeperRequest>();
  cmd->add_option("--session-fd", request->session_fd, "The connection's session record (a memfd)")->required();
  cmd->add_option("--ready-fd", request->ready_fd, "Handed to the first daemon as its --ready-fd");
  cmd->add_option("--run-dir", request->run_dir,
                  "The controller's directory: when the controller dies, the keeper starts the next one");
  cmd->add_option("SERVE", request->serve_args, "serve and its arguments (after --)")->required();
  cmd->callback([&exit_code, request] { exit_code = mountctl::keep_main(*request); });
}

void add_run(CLI::App& app, int& exit_code, RunDir run_dir) {
  auto* cmd = app.add_subcommand(
      "run", "Run CMD in a container (an OCI runtime's default sandbox) with a host channel "
             "bound in; the channel goes when CMD ends; the exit status is CMD's");
  auto request = std::make_shared<mountctl::RunRequest>();
  cmd->add_option("--host-channel", request->specs, "<host path>:<container path>:<rw|ro>:<size>")
      ->required()
      ->allow_extra_args(false);
  cmd->add_option("--rootfs", request->rootfs,
                  "The container's root directory (default: the host's / alone, read-only)");
  cmd->add_option("--user", request->user, "Run CMD as U[:G] (uid or name, gid or group; default root)");
  cmd->add_option("--memory", request->memory, "The container's memory limit (e.g. 24M; default none)");
  cmd->add_option("--runtime", request->runtime,
                  "The OCI runtime: a path or a name in PATH (default: crun where it can run here, else runc)");
  cmd->add_option("--userns", request->userns,
                  "host: no user namespace (container root is host root); default private: "
                  "container ids map to unprivileged host ids");
  add_charge_option(cmd, request->charge);
  cmd->add_option("CMD", request->command, "The command and its arguments (after --)")->required();
  cmd->callback([&exit_code, request, run_dir] {
    request->run_dir = *run_dir;
    exit_code = mountctl::run_main(*request);
  });
}

}  // namespace

void add_channel_commands(CLI::App& app, int& exit_code) {
  // The run dir is global so that every command (and a test) can point at its own
  // controller: --run-dir or $HOSTCHANFS_RUN_DIR.
  auto run_dir = std::make_shared<std::string>(mountctl::default_run_dir());
  app.add_option("--run-dir", *run_dir,
                 "The controller's directory (default /run/hostchanfs, or $HOSTCHANFS_RUN_DIR)");
  add_controller(app, exit_code);
  add_mount(app, exit_code, run_dir);
  add_umount(app, exit_code, run_dir);
  add_ls(app, exit_code, run_dir);
  add_metrics(app, exit_code, run_dir);
  add_run(app, exit_code, run_dir);
  add_keep(app, exit_code);
}

}  // namespace hostchanfs::cli
