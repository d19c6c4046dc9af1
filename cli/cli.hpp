#pragma once

namespace hostchanfs::cli {

// The whole `hostchanfs` program; main() only calls this (tests may call it in-process).
int run(int argc, char** argv);

}  // namespace hostchanfs::cli
