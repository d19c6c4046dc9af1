// The whole `hostchanfs` program; main() only calls run(). Every subcommand's logic lives
// in a library (fs/, mountctl/); cli/ only turns flags into requests (command.hpp).
#pragma once

namespace hostchanfs::cli {

// Parses argv and runs the subcommand; the exit status (2 for a usage error).
int run(int argc, char** argv);

}  // namespace hostchanfs::cli
