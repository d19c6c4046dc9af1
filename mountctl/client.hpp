// The controller's client API: what every front door (the CLI's mount/umount/ls/run and
// the OCI hook) calls. One code path: a front door parses the spec, connects to the
// controller (which it starts on demand), and asks it to create, expose or remove a
// channel. The controller owns every daemon, mount and registry entry; a front door never
// becomes the parent of a channel daemon.
//
// Stable API: later changes only add to this header.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sys/result.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::mountctl {

// ---------------------------------------------------------------------------------------
// Errors for people: one line (what, why, what to do) and whether the input was at fault.

struct Error {
  enum class Kind {
    kBadInput,  // the request was refused; nothing was changed (exit status 2)
    kNotFound,  // no such channel (e.g. remove() of a channel that is already gone)
    kFailure,   // a system error; what was made was undone (exit status 1)
  };
  Kind kind = Kind::kFailure;
  std::string message;  // one line, no trailing newline

  static Error bad_input(std::string msg) { return {Kind::kBadInput, std::move(msg)}; }
  static Error not_found(std::string msg) { return {Kind::kNotFound, std::move(msg)}; }
  static Error failure(std::string msg) { return {Kind::kFailure, std::move(msg)}; }
  // The CLI exit status for this error: 2 for bad input, 1 otherwise.
  int exit_code() const noexcept { return kind == Kind::kBadInput ? 2 : 1; }
};

// A value or an Error. Test with `if (!r)`, read r.value() / r.error().message.
template <class T>
using Expected = outcome::result<T, Error, outcome::policy::terminate>;

// ---------------------------------------------------------------------------------------
// The spec: <host path>:<container path>:<rw|ro>:<size>

inline constexpr std::uint64_t kDefaultChannelSize = 64ull << 20;  // empty size field
inline constexpr std::uint64_t kMinChannelSize = 4096;             // one page

struct ChannelSpec {
  std::string host_path;       // absolute, cleaned
  std::string container_path;  // absolute, cleaned
  bool read_only = false;      // empty mode field means rw
  std::uint64_t size_bytes = kDefaultChannelSize;

  // The canonical text: "/a:/b:rw:33554432".
  std::string to_string() const;
  bool operator==(const ChannelSpec&) const = default;
};

// The memory limits a size is checked against (from /proc/meminfo; tests pass their own).
struct MemoryInfo {
  std::uint64_t total_bytes = 0;
  std::uint64_t available_bytes = 0;
  static Result<MemoryInfo> read();
};

// Syntax, path cleaning and the size limits (min one page, max half of MemTotal, not
// above MemAvailable). Does NOT look at the host path: whether it already exists is
// checked by the controller at create() (so an idempotent re-create can succeed).
// Errors are kBadInput with a one-line message naming the field and its value.
Expected<ChannelSpec> parse_spec(std::string_view text);
Expected<ChannelSpec> parse_spec(std::string_view text, const MemoryInfo& mem);

// "//a/./b/" -> "/a/b"; ".." is resolved lexically ("/a/../b" -> "/b"). Only for absolute
// paths (the caller checks that first).
std::string clean_path(std::string_view absolute_path);

// ---------------------------------------------------------------------------------------
// The controller and its channels.

// /run/hostchanfs, or $HOSTCHANFS_RUN_DIR when set (tests use a private one).
std::string default_run_dir();

struct ChannelOptions {
  std::optional<uid_t> uid;  // owner of the channel root (default 0: container root in
  std::optional<gid_t> gid;  // a userns maps elsewhere, so the hook passes the host ids)
  std::uint64_t max_inodes = 0;  // 0: the store's default for the size
};

// Who a channel belongs to. `id` names it (e.g. "run:<pid>", "oci:<container id>",
// "cli"): create() with the same host path and the same id returns the existing channel
// (idempotent). With `pid`, the controller watches that process (pidfd) and removes the
// channel when it dies (`hostchanfs run` uses this; the OCI hook does not).
struct Owner {
  std::string id;
  std::optional<pid_t> pid;
};

struct ChannelInfo {
  ChannelSpec spec;
  std::string owner_id;
  uid_t uid = 0;
  gid_t gid = 0;
  std::uint64_t max_inodes = 0;
  std::uint64_t bytes_used = 0;   // from statfs on the mount
  std::uint64_t inodes_used = 0;  // from statfs on the mount
  pid_t daemon_pid = 0;
  std::string state;              // "running", "failed" (daemon died), "starting"
};

struct CreateResult {
  ChannelInfo channel;
  bool existed = false;  // true: the same owner had already created it; nothing was made
};

// One connection to the controller's root-only socket (JSON lines, one request and one
// answer at a time). Movable, not copyable.
class ControllerClient {
 public:
  // Connect to the controller of `run_dir`, starting it (detached: not our child) when
  // nothing answers, and wait until it does. The controller is `$HOSTCHANFS_SELF controller`
  // when that is set (a program linking this library that is not hostchanfs), otherwise
  // this very executable (/proc/self/exe).
  static Expected<ControllerClient> connect(const std::string& run_dir = default_run_dir());
  // Connect only; kNotFound when no controller is running (ls uses this: it starts none).
  static Expected<ControllerClient> connect_existing(
      const std::string& run_dir = default_run_dir());
  // For requests about existing channels (umount, ls, the hook's poststop): a running
  // controller, or — when a killed one left channels in the registry — a new one, which
  // takes them over. kNotFound when none runs and the registry is empty.
  static Expected<ControllerClient> connect_if_channels(
      const std::string& run_dir = default_run_dir());

  // Create the channel: host path (must not exist; parents are made), store memory,
  // FUSE mount, daemon, registry entry. All or nothing.
  Expected<CreateResult> create(const ChannelSpec& spec, const ChannelOptions& options,
                                const Owner& owner);
  // Bind the channel at its container path (with its mode) inside the mount namespace
  // of `pid`, resolving the path under `rootfs` (a path in that namespace) — the
  // controller calls expose_into().
  Expected<void> expose(const std::string& host_path, pid_t pid, const std::string& rootfs);
  // Unmount (lazily if busy), stop the daemon, remove the host path and the registry
  // entry. kNotFound when there is no such channel.
  Expected<void> remove(const std::string& host_path);
  Expected<std::vector<ChannelInfo>> list();

  ControllerClient(ControllerClient&&) noexcept = default;
  ControllerClient& operator=(ControllerClient&&) noexcept = default;
  ControllerClient(const ControllerClient&) = delete;
  ControllerClient& operator=(const ControllerClient&) = delete;
  ~ControllerClient() = default;

 private:
  ControllerClient(UniqueFd sock, std::string run_dir)
      : sock_(std::move(sock)), run_dir_(std::move(run_dir)) {}
  friend struct ControllerClientAccess;
  UniqueFd sock_;
  std::string run_dir_;
  std::string pending_;  // bytes read past the last answer's newline
};

// ---------------------------------------------------------------------------------------
// The one exposing function.
//
// Bind the mount at `host_path` (host mount namespace) into the mount namespace of `pid`
// at `container_path`, resolved inside `rootfs` (a path in that namespace) with openat2
// RESOLVE_IN_ROOT, so a symlink in the rootfs cannot make it land outside; missing
// directories are created. The clone is nosuid, nodev, noexec, private, and read-only when
// `read_only` (which the container cannot undo). Must be called from the host mount
// namespace; forks a child for setns. Errors are one line.
Expected<void> expose_into(const std::string& host_path, pid_t pid, const std::string& rootfs,
                           const std::string& container_path, bool read_only);

}  // namespace hostchanfs::mountctl
