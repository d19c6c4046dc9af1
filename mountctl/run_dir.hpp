// The controller's run dir: made root-only (0700), parents too.
#pragma once

#include <string>

#include "mountctl/client.hpp"

namespace hostchanfs::mountctl {

Expected<void> make_run_dir(const std::string& run_dir);

}  // namespace hostchanfs::mountctl
