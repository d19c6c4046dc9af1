#include "cli/cli.hpp"

int main(int argc, char** argv) { return hostchanfs::cli::run(argc, argv); }
