// The CLI's channel commands: thin wrappers that parse flags and call the controller.
// Every refusal is one line on stderr; exit 0 ok, 2 bad input (nothing changed), 1 failure.
#include "mountctl/commands.hpp"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/command.hpp"
#include "mountctl/client.hpp"
#include "mountctl/controller.hpp"
#include "mountctl/protocol.hpp"
#include "mountctl/run.hpp"

namespace hostchanfs::mountctl {

namespace {

int report(const Error& error) {
  std::fprintf(stderr, "hostchanfs: %s\n", error.message.c_str());
  return error.exit_code();
}

std::string human_bytes(std::uint64_t bytes) {
  const char* units[] = {"B", "K", "M", "G", "T"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  if (unit == 0) return fmt::format("{}B", bytes);
  return fmt::format("{:.1f}{}", value, units[unit]);
}

// What to hand to an engine: a `--mount` flag and the OCI config.json `mounts` entry.
void print_engine_mounts(const ChannelSpec& spec) {
  std::printf("--mount type=bind,src=%s,dst=%s,ro=%s\n", spec.host_path.c_str(),
              spec.container_path.c_str(), spec.read_only ? "true" : "false");
  json entry{{"destination", spec.container_path},
             {"type", "bind"},
             {"source", spec.host_path},
             {"options", {"rbind", "rprivate", "nosuid", "nodev", "noexec",
                          spec.read_only ? "ro" : "rw"}}};
  std::printf("%s\n", entry.dump().c_str());
}

void add_controller(CLI::App& app, int& exit_code, const std::string& run_dir_default) {
  auto* cmd = app.add_subcommand("controller",
                                 "Run the channel controller in the foreground (internal: "
                                 "the other commands start it on demand)");
  cmd->group("");  // hidden from the main --help
  auto run_dir = std::make_shared<std::string>(run_dir_default);
  cmd->add_option("--run-dir", *run_dir, "The controller's directory (socket, registry)");
  cmd->callback([&exit_code, run_dir] { exit_code = run_controller(*run_dir); });
}

void add_mount(CLI::App& app, int& exit_code, std::shared_ptr<std::string> run_dir) {
  auto* cmd = app.add_subcommand(
      "mount", "Create a channel: mount it at the host path and print the bind mount to hand "
               "to a container engine");
  struct Args {
    std::string spec;
    std::optional<uid_t> uid;
    std::optional<gid_t> gid;
    std::uint64_t inodes = 0;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("SPEC", args->spec, "<host path>:<container path>:<rw|ro>:<size>")->required();
  cmd->add_option("--uid", args->uid, "Owner uid of the channel root (default 0)");
  cmd->add_option("--gid", args->gid, "Owner gid of the channel root (default 0)");
  cmd->add_option("--inodes", args->inodes, "Inode limit (default: one per 4 KiB of size)");
  cmd->callback([&exit_code, args, run_dir] {
    auto spec = parse_spec(args->spec);
    if (!spec) return void(exit_code = report(spec.error()));
    auto client = ControllerClient::connect(*run_dir);
    if (!client) return void(exit_code = report(client.error()));
    ChannelOptions options{args->uid, args->gid, args->inodes};
    // A per-invocation owner: `mount` of a path that is already a channel is refused.
    auto created = client.value().create(spec.value(), options,
                                         Owner{fmt::format("cli:{}", ::getpid()), std::nullopt});
    if (!created) return void(exit_code = report(created.error()));
    print_engine_mounts(spec.value());
    exit_code = cli::kExitOk;
  });
}

void add_umount(CLI::App& app, int& exit_code, std::shared_ptr<std::string> run_dir) {
  auto* cmd = app.add_subcommand(
      "umount", "Remove a channel: unmount it (lazily if busy) and delete the host path");
  auto host = std::make_shared<std::string>();
  cmd->add_option("HOST_PATH", *host, "The channel's host path")->required();
  cmd->callback([&exit_code, host, run_dir] {
    if (host->empty() || host->front() != '/') {
      return void(exit_code = report(Error::bad_input(fmt::format(
                      "host path \"{}\" is not an absolute path: give the channel's host path "
                      "as `hostchanfs ls` shows it", *host))));
    }
    auto client = ControllerClient::connect_if_channels(*run_dir);
    if (!client) {
      if (client.error().kind == Error::Kind::kNotFound) {
        return void(exit_code = report(Error::bad_input(fmt::format("no channel at {}", clean_path(*host)))));
      }
      return void(exit_code = report(client.error()));
    }
    auto removed = client.value().remove(clean_path(*host));
    if (!removed) {
      Error e = removed.error();
      if (e.kind == Error::Kind::kNotFound) e.kind = Error::Kind::kBadInput;
      return void(exit_code = report(e));
    }
    exit_code = cli::kExitOk;
  });
}

void add_ls(CLI::App& app, int& exit_code, std::shared_ptr<std::string> run_dir) {
  auto* cmd = app.add_subcommand("ls", "List every channel with its usage and daemon state");
  auto as_json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *as_json, "Print a JSON array instead of a table");
  cmd->callback([&exit_code, as_json, run_dir] {
    std::vector<ChannelInfo> channels;
    auto client = ControllerClient::connect_if_channels(*run_dir);
    if (client) {
      auto listed = client.value().list();
      if (!listed) return void(exit_code = report(listed.error()));
      channels = std::move(listed).value();
    } else if (client.error().kind != Error::Kind::kNotFound) {
      return void(exit_code = report(client.error()));
    }
    exit_code = cli::kExitOk;
    if (*as_json) {
      std::printf("%s\n", json(channels).dump(2).c_str());
      return;
    }
    std::printf("%-24s %-20s %-4s %8s %8s %15s %8s %s\n", "HOST PATH", "CONTAINER PATH", "MODE",
                "QUOTA", "USED", "INODES", "DAEMON", "STATE");
    for (const auto& c : channels) {
      std::string inodes = fmt::format("{}/{}", c.inodes_used, c.max_inodes);
      std::printf("%-24s %-20s %-4s %8s %8s %15s %8d %s\n", c.spec.host_path.c_str(),
                  c.spec.container_path.c_str(), c.spec.read_only ? "ro" : "rw",
                  human_bytes(c.spec.size_bytes).c_str(), human_bytes(c.bytes_used).c_str(),
                  inodes.c_str(), c.daemon_pid, c.state.c_str());
    }
  });
}

}  // namespace

void add_commands(CLI::App& app, int& exit_code) {
  // The run dir is global so that every command (and a test) can point at its own
  // controller: --run-dir or $HOSTCHANFS_RUN_DIR.
  auto run_dir = std::make_shared<std::string>(default_run_dir());
  app.add_option("--run-dir", *run_dir,
                 "The controller's directory (default /run/hostchanfs, or $HOSTCHANFS_RUN_DIR)");
  add_controller(app, exit_code, *run_dir);
  add_mount(app, exit_code, run_dir);
  add_umount(app, exit_code, run_dir);
  add_ls(app, exit_code, run_dir);
  add_run_command(app, exit_code, run_dir);
}

}  // namespace hostchanfs::mountctl
