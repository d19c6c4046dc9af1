// Reading a small file whole, with plain read(2). For /proc in particular: a process can
// exit while its files are read, and read() then fails with ESRCH — which std::ifstream's
// istreambuf_iterator turns into an exception (libstdc++'s filebuf throws on read errors).
// Here a file that stops being readable reads as what was read so far.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "sys/result.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs {

// The file's bytes, or why it could not be opened.
inline Result<std::string> read_whole_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return last_errc();
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

// The same, with a file that cannot be opened reading as empty.
inline std::string read_small_file(const std::string& path) {
  auto text = read_whole_file(path);
  return text ? std::move(text).value() : std::string();
}

}  // namespace hostchanfs
