// How a part adds its subcommands to the `hostchanfs` program: each part provides an
// add_*_command(CLI::App&, int& exit_code) that registers a subcommand whose callback
// stores the command's exit status in exit_code. Errors for people are printed by the
// command itself, as one line on stderr.
#pragma once

#include <CLI/CLI.hpp>

namespace hostchanfs::cli {

// Exit statuses scripts can rely on.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;   // the operation failed (system error)
inline constexpr int kExitUsage = 2;     // bad input: nothing was changed

}  // namespace hostchanfs::cli
