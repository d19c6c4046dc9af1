// The OCI runtime behind `hostchanfs run`, driven as engines drive one: `create` (the
// runtime sets the container up and calls the createRuntime hook, which binds the
// channel), `start`, and `delete --force` (it kills what is left and calls the poststop
// hook, which removes the channel). Not `run`: crun's foreground `run` waits for every
// process it adopts, a channel daemon included.
//
// The container's stdio is ours (no terminal): `create` hands the runtime our stdin,
// stdout and stderr, which it gives to the container's process. Our process is the
// container's child subreaper (the caller sets it), so once `create` has returned the
// container's first process is our child: its exit status is the command's.
//
// crun or runc? crun where it is installed and can run here, else runc. On a host with
// hybrid cgroups (v1 hierarchies under /sys/fs/cgroup, cgroup2 at /sys/fs/cgroup/unified)
// crun refuses to create any container while a controller is enabled in cgroup2 ("cgroups
// in hybrid mode not supported"); systemd mounts every controller as v1 on such a host,
// but a host that leaves one (say hugetlb) to cgroup2 has to mount its v1 hierarchy before
// crun runs there. runc runs on it as it is.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "mountctl/error.hpp"
#include "sys/child.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::mountctl {

struct OciRuntime {
  std::string path;  // absolute
  std::string name;  // its file name: "crun", "runc", ...
};

// `requested`: a path, or a program name looked up in PATH; "": crun where installed and
// usable here, else runc. kBadInput (one line) when there is none, or when crun is asked
// for on a host whose cgroups it refuses.
Expected<OciRuntime> choose_runtime(const std::string& requested);

// Why crun cannot create containers on this host (its cgroups), or nullopt.
std::optional<std::string> crun_cgroup_problem();

// One container of a runtime, by id. Deleted (--force) when this object goes, if it was
// created and not removed since.
class RuntimeContainer {
 public:
  RuntimeContainer(OciRuntime runtime, std::string id)
      : runtime_(std::move(runtime)), id_(std::move(id)) {}
  RuntimeContainer(const RuntimeContainer&) = delete;
  RuntimeContainer& operator=(const RuntimeContainer&) = delete;
  ~RuntimeContainer();

  // `create --bundle B --pid-file P ID` with our stdio; the container's process.
  Expected<pid_t> create(const std::string& bundle, const std::string& pid_file);
  Expected<void> start();
  // `delete --force`: kills the container if it still runs, then runs poststop.
  Expected<void> remove();
  const std::string& id() const noexcept { return id_; }

 private:
  OciRuntime runtime_;
  std::string id_;
  bool created_ = false;
};

// The cleanup of a `run` that dies (SIGKILL, a crash) before it has cleaned up itself:
// a child process that waits on a pipe from us and, when the pipe closes without our
// word that we are done, deletes the container (--force: its process dies, the poststop
// hook removes the channel) and removes its bundle. It ignores the signals a terminal or
// a `kill` of our process group sends, so that it outlives us to do its work.
class RunGuard {
 public:
  static Expected<RunGuard> start(const OciRuntime& runtime, const std::string& id,
                                  const std::string& bundle_dir);
  RunGuard(RunGuard&&) noexcept = default;
  RunGuard& operator=(RunGuard&&) = delete;
  RunGuard(const RunGuard&) = delete;
  RunGuard& operator=(const RunGuard&) = delete;
  // Says we are done (it exits without doing anything) and reaps it.
  ~RunGuard();

 private:
  RunGuard(Child child, UniqueFd pipe) : child_(std::move(child)), pipe_(std::move(pipe)) {}
  Child child_;
  UniqueFd pipe_;  // our end
};

}  // namespace hostchanfs::mountctl
