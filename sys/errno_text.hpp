// errno_text: an errno for people ("No such file or directory"), from an int or a
// std::errc. The one formatter every log line and error message uses.
#pragma once

#include <cstring>
#include <string>
#include <system_error>

namespace hostchanfs {

inline std::string errno_text(int err) { return std::strerror(err); }
inline std::string errno_text(std::errc err) { return errno_text(static_cast<int>(err)); }

}  // namespace hostchanfs
