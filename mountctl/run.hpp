// `hostchanfs run --host-channel SPEC [--rootfs DIR] [--user U[:G]] -- CMD...`: the
// embedded default container. CMD runs in its own mount, pid, ipc and uts namespaces with
// the host's root read-only (or DIR via pivot_root) and each channel bound in; when CMD
// ends its channels are removed; the exit status is CMD's; signals reach CMD.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

namespace hostchanfs::mountctl {

void add_run_command(CLI::App& app, int& exit_code, std::shared_ptr<std::string> run_dir);

}  // namespace hostchanfs::mountctl
