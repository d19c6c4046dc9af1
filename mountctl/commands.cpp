#include "mountctl/commands.hpp"

namespace hostchanfs::mountctl {

void add_commands(CLI::App& /*app*/, int& /*exit_code*/) {}

}  // namespace hostchanfs::mountctl
