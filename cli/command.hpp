// How the `hostchanfs` program is put together: each group of subcommands has an add_*
// function that declares its flags (CLI11, here and nowhere else) and a callback that
// turns them into the typed request of a library function (fs::serve_main,
// mountctl::mount_main, ...) and stores the status it returns in exit_code. Those
// functions check the request, print, and report refusals themselves (sys/exit_status.hpp).
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "fs/charge.hpp"

namespace hostchanfs::cli {

// For an unsigned option (an inode limit, a uid): digits only, checked before CLI11
// converts it, which would wrap "-1" around to the largest value.
inline const CLI::Validator kWholeNumber(
    [](std::string& text) {
      return !text.empty() && text.find_first_not_of("0123456789") == std::string::npos
                 ? std::string()
                 : "\"" + text + "\" is not a whole number (0 or more)";
    },
    "UINT", "whole number");

// --charge channel|writer (mount, run, serve): who pays for the channel's file data.
inline void add_charge_option(CLI::App* cmd, fs::Charge& charge) {
  cmd->add_option_function<std::string>(
         "--charge", [&charge](const std::string& name) { charge = *fs::parse_charge(name); },
                  "Who pays for file data: channel (default; the channel's daemon, never a "
                  "container: a small container can fill a big channel) or writer (FUSE "
                  "passthrough onto a private tmpfs: kernel speed, charged to the writer's "
                  "memory cgroup as tmpfs is; Linux 6.9+, root)")
      ->check(CLI::IsMember({"channel", "writer"}));
}

// serve
void add_serve_command(CLI::App& app, int& exit_code);
// --run-dir (global), controller, mount, umount, ls, run
void add_channel_commands(CLI::App& app, int& exit_code);
// oci-hook
void add_oci_hook_command(CLI::App& app, int& exit_code);

}  // namespace hostchanfs::cli
