// The controller's run dir (default /run/hostchanfs): where its files are, how it is opened
// and made, and how one controller takes it for itself.
//
//   run_dir/controller.lock   flock: one controller per run dir
//   run_dir/controller.sock   root-only socket, JSON lines (protocol.hpp)
//   run_dir/controller.pid    its pid
//   run_dir/controller.log    its log and its daemons' (when started on demand)
//   run_dir/registry/*.json   the registry: one file per channel (registry.hpp)
//
// The run dir must be root's own (root_owned.hpp): owned by root, writable by root only,
// reached without a symlink through directories only root can change. Anything else is
// refused with one line naming the problem and the fix: the controller runs as root, and
// a file someone else could put there (a symlink named controller.log, a forged registry
// record) would make it write or unmount where that someone chose. Every file in it is
// reached through the run dir's descriptor and opened O_NOFOLLOW.
#pragma once

#include <string>

#include "mountctl/error.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::mountctl {

inline constexpr const char* kBuiltinRunDir = "/run/hostchanfs";

// kBuiltinRunDir, or $HOSTCHANFS_RUN_DIR when set (tests use a private one).
std::string default_run_dir();

// For messages: where the log of the controller of `run_dir` is.
std::string log_path(const std::string& run_dir);

inline constexpr const char* kSocketName = "controller.sock";
inline constexpr const char* kLockName = "controller.lock";
inline constexpr const char* kPidName = "controller.pid";
inline constexpr const char* kLogName = "controller.log";
inline constexpr const char* kRegistryName = "registry";

class RunDir {
 public:
  // The run dir at `path` (absolute), checked to be root's own. With `create`, a missing one
  // is made (0700, its missing parents 0755). kNotFound when it is missing and not
  // created; kBadInput for a relative path or one that is not root's own.
  static Expected<RunDir> open(const std::string& path, bool create);

  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }
  // "<run dir>/<name>", for messages.
  std::string file_path(const char* name) const { return path_ + "/" + name; }

  // The file `name` in it, opened with `flags` | O_NOFOLLOW | O_CLOEXEC (created 0600 with
  // O_CREAT); it must be a regular file of root's with one link (never a symlink or a hard
  // link to a file elsewhere). kBadInput otherwise, kFailure for a system error.
  Expected<UniqueFd> open_file(const char* name, int flags) const;

  // A socket address for `name` in it that goes through its descriptor
  // (/proc/self/fd/N/name): the same directory that was checked, and never too long.
  std::string socket_address(const char* name) const;

  // The registry directory in it, open for reading (made 0700 with `create`; kNotFound
  // when missing and not created). Root's own, as the run dir.
  Expected<UniqueFd> open_registry(bool create) const;

  // Take the run dir for this process: its lock, held as long as the returned descriptor
  // is open, and the pid file. kAlreadyRunning when another controller holds it.
  Expected<UniqueFd> claim() const;

 private:
  RunDir(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  std::string path_;
  UniqueFd fd_;
};

}  // namespace hostchanfs::mountctl
