// What the bench helper programs (metadata, ipc) share: a monotonic clock, the one-line
// JSON result the harness (bench/harness.py) parses, and one-line fatal errors.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "sys/result.hpp"

namespace hostchanfs::bench {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// A helper that cannot measure says what failed and why on one line, and exits 1: the
// harness records the line as the workload's error and goes on with the next one.
[[noreturn]] inline void die(std::string_view what, int err) {
  std::fprintf(stderr, "%.*s: %s\n", static_cast<int>(what.size()), what.data(),
               std::strerror(err));
  std::exit(1);
}

[[noreturn]] inline void die(std::string_view what, std::errc err) { die(what, to_errno(err)); }

// The result line: {"value": v, "unit": u, ...extra}. One line on stdout, nothing else.
inline void emit(double value, std::string_view unit, nlohmann::json extra = nlohmann::json::object()) {
  extra["value"] = value;
  extra["unit"] = unit;
  std::printf("%s\n", extra.dump().c_str());
  std::fflush(stdout);
}

}  // namespace hostchanfs::bench
