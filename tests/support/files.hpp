// read_file for tests: a file's bytes, or "<ENOENT>" (its errno's name) when it cannot be
// opened, so that a trace or a failed assertion shows why it is not what was expected.
#pragma once

#include <string>

#include "sys/errno_text.hpp"
#include "sys/read_file.hpp"

namespace hostchanfs::testing {

inline std::string read_file(const std::string& path) {
  auto text = read_whole_file(path);
  return text ? std::move(text).value() : "<" + errno_name(text.error()) + ">";
}

}  // namespace hostchanfs::testing
