#include "sys/exit_status.hpp"

#include <cstdio>
#include <string>

namespace hostchanfs {

int print_error(std::string_view program, std::string_view message, int exit_status) {
  // One write, so that lines of processes sharing a stderr do not interleave.
  std::string line;
  line.reserve(program.size() + message.size() + 3);
  line.append(program).append(": ").append(message).append("\n");
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
  return exit_status;
}

}  // namespace hostchanfs
