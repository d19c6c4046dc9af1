// Skip a FUSE test only where the machine truly lacks /dev/fuse; in CI (CI=true) a test
// that would skip fails instead, so a broken CI machine cannot pass silently.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string_view>

namespace hostchanfs::testing {

inline bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string_view(ci) == "true";
}

}  // namespace hostchanfs::testing

#define HOSTCHANFS_REQUIRE(cond, why)                                       \
  do {                                                                      \
    if (!(cond)) {                                                          \
      if (::hostchanfs::testing::in_ci()) FAIL() << "required in CI: " << why; \
      GTEST_SKIP() << why;                                                  \
    }                                                                       \
  } while (0)

#define HOSTCHANFS_REQUIRE_FUSE()                                                 \
  HOSTCHANFS_REQUIRE(::access("/dev/fuse", R_OK | W_OK) == 0 && ::geteuid() == 0, \
                     "needs root and /dev/fuse")
