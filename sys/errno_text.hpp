// errno for people and for tests: errno_text (its text, "No such file or directory") and
// errno_name (its symbol, "ENOENT"), from an int or a std::errc. The one formatter every
// log line, error message and test failure uses.
#pragma once

#include <string.h>

#include <cstring>
#include <string>
#include <system_error>

namespace hostchanfs {

inline std::string errno_text(int err) { return std::strerror(err); }
inline std::string errno_text(std::errc err) { return errno_text(static_cast<int>(err)); }

// "ENOENT"; the number when the value has no name.
inline std::string errno_name(int err) {
  const char* name = ::strerrorname_np(err);
  return name ? name : std::to_string(err);
}
inline std::string errno_name(std::errc err) { return errno_name(static_cast<int>(err)); }

}  // namespace hostchanfs
