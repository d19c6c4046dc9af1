#pragma once

#include <CLI/CLI.hpp>

namespace hostchanfs::mountctl {

// controller, mount, umount, ls, run, oci-hook
void add_commands(CLI::App& app, int& exit_code);

}  // namespace hostchanfs::mountctl
