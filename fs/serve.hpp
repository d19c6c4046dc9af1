#pragma once

#include <CLI/CLI.hpp>

namespace hostchanfs::fs {

// `hostchanfs serve --size N [--inodes N] [--uid U --gid G] MOUNTPOINT`
void add_serve_command(CLI::App& app, int& exit_code);

}  // namespace hostchanfs::fs
