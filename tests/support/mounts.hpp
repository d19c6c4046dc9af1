// The mounts this process sees (/proc/self/mountinfo), for tests that check what is left
// mounted and for cleanups that detach what a failed test left behind.
#pragma once

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace hostchanfs::testing {

struct MountEntry {
  std::string mount_point, fstype, super_options;
};

inline std::vector<MountEntry> mounts() {
  auto words = [](const std::string& text) {
    std::istringstream in(text);
    std::vector<std::string> out;
    for (std::string w; in >> w;) out.push_back(w);
    return out;
  };
  std::ifstream in("/proc/self/mountinfo");
  std::vector<MountEntry> result;
  for (std::string line; std::getline(in, line);) {
    auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    auto before = words(line.substr(0, dash));
    auto after = words(line.substr(dash + 3));
    if (before.size() < 5 || after.size() < 3) continue;
    result.push_back({before[4], after[0], after[2]});
  }
  return result;
}

// Mount points at or below `prefix`, outermost first (in mount order).
inline std::vector<std::string> mounts_under(const std::string& prefix) {
  std::vector<std::string> found;
  for (const auto& m : mounts()) {
    if (m.mount_point == prefix || m.mount_point.rfind(prefix + "/", 0) == 0) found.push_back(m.mount_point);
  }
  return found;
}

}  // namespace hostchanfs::testing
