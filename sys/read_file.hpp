// Read a small file whole, with plain read(2). For /proc in particular: a process can exit
// while its files are read, and read() then fails with ESRCH — which std::ifstream's
// istreambuf_iterator turns into an exception (libstdc++'s filebuf throws on read errors).
// Here a file that cannot be read, or stops being readable, reads as what was read so far.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "sys/unique_fd.hpp"

namespace hostchanfs {

inline std::string read_small_file(const std::string& path) {
  std::string out;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

}  // namespace hostchanfs
