#pragma once

#include <CLI/CLI.hpp>

namespace hostchanfs::fs {

// `hostchanfs serve --size N [--inodes N] [--uid U --gid G] [--ready-fd FD]
//                   [--fuse-fd FD [--meta-fd FD --data-fd FD]] MOUNTPOINT`
// One channel's daemon in the foreground (fs/session.hpp). A bad size or a mount point
// that is missing, not a directory or already a mount is refused with one line on stderr
// and exit status 2, before anything is created.
void add_serve_command(CLI::App& app, int& exit_code);

}  // namespace hostchanfs::fs
