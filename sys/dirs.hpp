// mkdir -p that records what it made, so that whoever made a path can remove exactly that
// again (a channel's host path and its parents; the controller's run dir).
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "sys/result.hpp"

namespace hostchanfs {

// Which directory could not be made, and why (ENOTDIR: it exists and is not a directory).
struct MakeDirsError {
  std::errc error;
  std::string path;
};

template <class T>
using MakeDirsResult = outcome::result<T, MakeDirsError, outcome::policy::terminate>;

// Every missing directory of the absolute `path`, made with `mode`, the last one with
// `last_mode`; returns the ones it made, outermost first. All or nothing: on failure what
// it made is removed again.
MakeDirsResult<std::vector<std::string>> make_dirs(std::string_view path, mode_t mode,
                                                   mode_t last_mode);

// Removes directories make_dirs() made, innermost first; one that is not empty stays.
void remove_dirs(const std::vector<std::string>& made) noexcept;

}  // namespace hostchanfs
