// CrunCgroups: a cgroup layout crun accepts, for the tests that run crun. On a host with
// hybrid cgroups (v1 hierarchies plus a cgroup2 mount), crun refuses to create a
// container while any controller is enabled in cgroup2 ("cgroups in hybrid mode not
// supported"); this host leaves hugetlb there. Mounting that controller's v1 hierarchy
// takes it from cgroup2, host-wide, for as long as the mount lives: construct this in a
// mount namespace of the test's own (the mounts go with it), under a directory of the
// test's. On destruction the hierarchies are emptied and unmounted, and the kernel gives
// the controllers back to cgroup2. Tests that do this share ctest's RESOURCE_LOCK
// host-cgroups. On a pure v1 or pure v2 host it does nothing.
#pragma once

#include <sys/mount.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "sys/errno_text.hpp"
#include "sys/read_file.hpp"
#include "tests/support/mounts.hpp"

namespace hostchanfs::testing {

class CrunCgroups {
 public:
  explicit CrunCgroups(const std::filesystem::path& dir) {
    const MountEntry* v2 = nullptr;
    bool any_v1 = false;
    std::set<std::string> v1_options;
    auto all = mounts();
    for (const auto& m : all) {
      if (m.fstype == "cgroup2") v2 = &m;
      if (m.fstype == "cgroup") {
        any_v1 = true;
        std::istringstream opts(m.super_options);
        for (std::string o; std::getline(opts, o, ',');) v1_options.insert(o);
      }
    }
    if (!v2 || !any_v1) return;  // pure v1 or pure v2: crun is happy as it is
    // The controllers cgroup2 holds now, and those a v1 hierarchy holds that no mount of
    // ours shows: a test running beside us has taken them from cgroup2 for itself and will
    // give them back when it ends, maybe while our containers run; a mount of ours keeps
    // the hierarchy (the kernel shares it) until we are done too.
    auto wanted = words(read_small_file(v2->mount_point + "/cgroup.controllers"));
    std::ifstream proc_cgroups("/proc/cgroups");
    for (std::string line; std::getline(proc_cgroups, line);) {
      auto fields = words(line);
      if (fields.size() >= 2 && fields[0].front() != '#' && fields[1] != "0") wanted.push_back(fields[0]);
    }
    for (const auto& controller : wanted) {
      if (v1_options.count(controller)) continue;
      v1_options.insert(controller);
      // Named as the controller: runc, mounting a cgroup namespace's hierarchies, takes
      // the subsystem from the mount point's name.
      auto target = dir / "cgroup" / controller;
      std::filesystem::create_directories(target);
      if (::mount("cgroup", target.c_str(), "cgroup", MS_NOSUID | MS_NODEV | MS_NOEXEC, controller.c_str()) < 0) {
        throw std::runtime_error("mount the v1 hierarchy of cgroup controller " + controller + ": " +
                                 errno_text(errno));
      }
      mounts_.emplace_back(controller, target.string());
    }
  }
  ~CrunCgroups() {
    using namespace std::chrono_literals;
    for (const auto& [controller, target] : mounts_) {
      // The kernel gives the controller back to cgroup2 only if the hierarchy has no child
      // cgroup when its last mount goes, and a removed child lingers a moment: wait for
      // the count to reach the root alone (bounded), unmount, and wait for the hand-back.
      remove_child_cgroups(target);
      for (int i = 0; i < 200 && hierarchy_of(controller).second > 1; ++i) std::this_thread::sleep_for(25ms);
      ::umount2(target.c_str(), 0);
      for (int i = 0; i < 80 && hierarchy_of(controller).first != 0; ++i) std::this_thread::sleep_for(25ms);
    }
  }
  CrunCgroups(const CrunCgroups&) = delete;
  CrunCgroups& operator=(const CrunCgroups&) = delete;

  static std::vector<std::string> words(const std::string& text) {
    std::istringstream in(text);
    std::vector<std::string> out;
    for (std::string w; in >> w;) out.push_back(w);
    return out;
  }

 private:
  // Every child cgroup below `dir`, deepest first (a cgroup directory holds only control
  // files, which rmdir ignores).
  static void remove_child_cgroups(const std::filesystem::path& dir) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      if (entry.is_directory(ec) && !entry.is_symlink(ec)) {
        remove_child_cgroups(entry.path());
        ::rmdir(entry.path().c_str());
      }
    }
  }
  // A controller's v1 hierarchy id (0: it belongs to cgroup2) and its number of cgroups.
  static std::pair<int, int> hierarchy_of(const std::string& controller) {
    std::ifstream in("/proc/cgroups");
    for (std::string line; std::getline(in, line);) {
      auto fields = words(line);
      if (fields.size() >= 3 && fields[0] == controller) return {std::stoi(fields[1]), std::stoi(fields[2])};
    }
    return {0, 0};
  }

  std::vector<std::pair<std::string, std::string>> mounts_;  // controller, mount point
};

}  // namespace hostchanfs::testing
