// The client side of the controller: connecting, starting it on demand, and the requests.
#include "mountctl/client.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include <fmt/format.h>

#include "mountctl/registry.hpp"
#include "sys/child.hpp"
#include "sys/errno_text.hpp"
#include "sys/pidfd.hpp"
#include "sys/unix_socket.hpp"

namespace hostchanfs::mountctl {

namespace {

constexpr auto kControllerStartTimeout = std::chrono::seconds(20);
// How long a controller that lost the start race is given to be replaced by the winner's
// socket, and how many times a client starts one.
constexpr auto kRaceLoserWait = std::chrono::milliseconds(500);
constexpr int kControllerSpawns = 5;

Expected<UniqueFd> connect_socket(const std::string& run_dir) {
  auto dir = RunDir::open(run_dir, /*create=*/false);
  if (!dir) {
    if (dir.error().kind == Error::Kind::kNotFound) {
      return Error::not_found(fmt::format("no hostchanfs controller runs for {}", run_dir));
    }
    return dir.error();
  }
  // Through the run dir's descriptor: the directory that was checked, whatever its path.
  std::string path = dir.value().file_path(kSocketName);
  auto address = unix_address(dir.value().socket_address(kSocketName));
  auto fd = address ? connect_unix(address.value()) : Result<UniqueFd>(address.error());
  if (!fd) {
    auto e = fd.error();
    if (e == std::errc::no_such_file_or_directory || e == std::errc::connection_refused) {
      return Error::not_found(fmt::format("no hostchanfs controller runs for {}", run_dir));
    }
    if (e == std::errc::permission_denied) {
      return Error::failure(fmt::format(
          "cannot reach the controller at {}: permission denied (run hostchanfs as root)", path));
    }
    return Error::failure(fmt::format("cannot reach the controller at {}: {}", path, errno_text(e)));
  }
  return std::move(fd).value();
}

// The hostchanfs executable: ourselves, unless $HOSTCHANFS_SELF names it (a test, or a
// program that links this library, is not hostchanfs).
std::string self_executable() {
  const char* env = std::getenv("HOSTCHANFS_SELF");
  return env && *env ? std::string(env) : std::string("/proc/self/exe");
}

// Start `hostchanfs controller` detached: it must outlive us and never be our child. Its
// output goes to the run dir's log. Returns a pidfd of it, to notice if it dies at start.
Expected<UniqueFd> spawn_controller(const std::string& run_dir) {
  if (::geteuid() != 0) {
    return Error::refused("the hostchanfs controller serves root only: run this as root");
  }
  HC_TRY(dir, RunDir::open(run_dir, /*create=*/true));
  HC_TRY(log, dir.open_file(kLogName, O_WRONLY | O_CREAT | O_APPEND));
  Exec controller({"hostchanfs", "controller", "--run-dir", dir.path()});
  controller.program(self_executable()).cwd("/");
  controller.place_fd(log.get(), STDOUT_FILENO).place_fd(log.get(), STDERR_FILENO);
  auto pid = spawn_detached(controller);
  if (!pid) {
    return Error::failure(fmt::format("cannot start the hostchanfs controller: {}",
                                      errno_text(pid.error())));
  }
  auto pidfd = open_pidfd(pid.value());
  return pidfd ? std::move(pidfd).value() : UniqueFd();  // empty if it already exited:
                                                          // then connecting decides
}

}  // namespace

template <class R>
Expected<typename R::Answer> ControllerClient::call(const R& request) {
  if (auto sent = send_line(sock_.get(), encode_request(request)); !sent) {
    if (sent.error() == std::errc::illegal_byte_sequence) {
      return Error::bad_input("a path or a name in the request is not UTF-8: nothing was sent");
    }
    return Error::failure(fmt::format("lost the controller: {}", errno_text(sent.error())));
  }
  auto line = read_line(sock_.get(), pending_);
  if (!line) {
    return Error::failure(fmt::format("lost the controller before it answered: {} (see {})",
                                      errno_text(line.error()), log_path(run_dir_)));
  }
  json answer;
  try {
    answer = json::parse(line.value());
  } catch (const json::exception& ex) {
    return Error::failure(fmt::format("the controller answered garbage: {}", ex.what()));
  }
  return decode_answer<R>(answer);
}

Expected<ControllerClient> ControllerClient::connect_existing(const std::string& run_dir) {
  HC_TRY(fd, connect_socket(run_dir));
  return ControllerClient(std::move(fd), run_dir);
}

Expected<ControllerClient> ControllerClient::connect_if_channels(const std::string& run_dir) {
  auto client = connect_existing(run_dir);
  if (client || client.error().kind != Error::Kind::kNotFound) return client;
  if (registry_has_channels(run_dir)) return connect(run_dir);
  return client;
}

Expected<ControllerClient> ControllerClient::connect(const std::string& run_dir) {
  auto fd = connect_socket(run_dir);
  if (fd) return ControllerClient(std::move(fd).value(), run_dir);
  if (fd.error().kind != Error::Kind::kNotFound) return fd.error();

  HC_TRY(controller, spawn_controller(run_dir));
  int spawned = 1;
  bool died = false;
  std::chrono::steady_clock::time_point died_at{};
  auto deadline = std::chrono::steady_clock::now() + kControllerStartTimeout;
  for (;;) {
    auto again = connect_socket(run_dir);
    if (again) return ControllerClient(std::move(again).value(), run_dir);
    if (again.error().kind != Error::Kind::kNotFound) return again.error();
    if (controller && !died) {
      died = wait_pidfd(controller.get(), std::chrono::milliseconds(20));
      if (died) died_at = std::chrono::steady_clock::now();
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    auto now = std::chrono::steady_clock::now();
    // Ours may have lost the lock race to another controller (a keeper brings one up when
    // its controller dies), which listens soon, or which was killed in turn: after a
    // while without a socket, start one again, a few times; then give up.
    bool waited = died && now - died_at > kRaceLoserWait;
    if (waited && spawned < kControllerSpawns && now < deadline) {
      HC_TRY(next, spawn_controller(run_dir));
      controller = std::move(next);
      died = false;
      ++spawned;
      continue;
    }
    if (waited || now > deadline) {
      auto last = connect_socket(run_dir);
      if (last) return ControllerClient(std::move(last).value(), run_dir);
      return Error::failure(fmt::format(
          "the hostchanfs controller did not start: see {}", log_path(run_dir)));
    }
  }
}

Expected<CreateResult> ControllerClient::create(const ChannelSpec& spec,
                                                const ChannelOptions& options,
                                                const Owner& owner) {
  return call(CreateRequest{spec, options, owner, std::nullopt});
}

Expected<CreateResult> ControllerClient::join(const ChannelSpec& spec,
                                              const ChannelOptions& options,
                                              const std::string& owner_id, const Member& member) {
  return call(CreateRequest{spec, options, Owner{owner_id, std::nullopt}, member});
}

Expected<LeaveOutcome> ControllerClient::leave(const std::string& host_path,
                                               const std::string& owner_id,
                                               const std::string& member_id) {
  return call(LeaveRequest{host_path, owner_id, member_id});
}

Expected<void> ControllerClient::expose(const std::string& host_path, pid_t pid,
                                        const std::string& rootfs) {
  HC_TRYV(call(ExposeRequest{host_path, pid, rootfs}));
  return success();
}

Expected<void> ControllerClient::remove(const std::string& host_path) {
  HC_TRYV(call(RemoveRequest{host_path}));
  return success();
}

Expected<std::vector<ChannelInfo>> ControllerClient::list() { return call(ListRequest{}); }

Expected<std::string> ControllerClient::metrics() { return call(MetricsRequest{}); }

Expected<ControllerClient::OwnedRemoval> ControllerClient::remove_if_owned(
    const std::string& host_path, const std::string& owner_id) {
  HC_TRY(channels, list());
  for (const ChannelInfo& channel : channels) {
    if (channel.spec.host_path != host_path) continue;
    if (channel.owner_id != owner_id) return OwnedRemoval::kNotOurs;
    auto removed = remove(host_path);
    if (removed) return OwnedRemoval::kRemoved;
    if (removed.error().kind != Error::Kind::kNotFound) return removed.error();
  }
  return OwnedRemoval::kNoChannel;
}

}  // namespace hostchanfs::mountctl
