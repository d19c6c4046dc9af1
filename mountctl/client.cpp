// The client side of the controller: connecting, starting it on demand, and the requests.
#include <fcntl.h>
#include <poll.h>
#include "mountctl/pidfd.hpp"
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include <fmt/format.h>

#include "mountctl/client.hpp"
#include "mountctl/protocol.hpp"
#include "mountctl/run_dir.hpp"

namespace hostchanfs::mountctl {

namespace {

constexpr auto kControllerStartTimeout = std::chrono::seconds(20);

std::string errno_text(std::errc e) { return std::make_error_code(e).message(); }

Expected<UniqueFd> connect_socket(const std::string& run_dir) {
  std::string path = socket_path(run_dir);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return Error::bad_input(fmt::format("run dir {} is too long for a socket path", run_dir));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Error::failure(fmt::format("cannot make a socket: {}", errno_text(last_errc())));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    auto e = last_errc();
    if (e == std::errc::no_such_file_or_directory || e == std::errc::connection_refused) {
      return Error::not_found(fmt::format("no hostchanfs controller runs for {}", run_dir));
    }
    if (e == std::errc::permission_denied) {
      return Error::failure(fmt::format(
          "cannot reach the controller at {}: permission denied (run hostchanfs as root)", path));
    }
    return Error::failure(fmt::format("cannot reach the controller at {}: {}", path, errno_text(e)));
  }
  return fd;
}

// The hostchanfs executable: ourselves, unless $HOSTCHANFS_SELF names it (a test, or a
// program that links this library, is not hostchanfs).
std::string self_executable() {
  const char* env = std::getenv("HOSTCHANFS_SELF");
  return env && *env ? std::string(env) : std::string("/proc/self/exe");
}

// Start `hostchanfs controller` detached (double fork + setsid): it must outlive us and
// never be our child. Returns a pidfd of it, to notice if it dies at start.
Expected<UniqueFd> spawn_controller(const std::string& run_dir) {
  HC_TRYV(make_run_dir(run_dir));
  std::string log = log_path(run_dir);
  int report[2];
  if (::pipe2(report, O_CLOEXEC) < 0) {
    return Error::failure(fmt::format("cannot make a pipe: {}", errno_text(last_errc())));
  }
  UniqueFd report_read(report[0]), report_write(report[1]);
  std::string run_dir_arg = run_dir;
  char* argv[] = {const_cast<char*>("hostchanfs"), const_cast<char*>("controller"),
                  const_cast<char*>("--run-dir"), run_dir_arg.data(), nullptr};
  pid_t middle = ::fork();
  if (middle < 0) return Error::failure(fmt::format("cannot fork: {}", errno_text(last_errc())));
  if (middle == 0) {
    ::setsid();
    pid_t controller = ::fork();
    if (controller != 0) {
      [[maybe_unused]] ssize_t n = ::write(report_write.get(), &controller, sizeof controller);
      ::_exit(controller < 0 ? 1 : 0);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    int in = ::open("/dev/null", O_RDONLY);
    int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (in >= 0) ::dup2(in, STDIN_FILENO);
    if (out >= 0) {
      ::dup2(out, STDOUT_FILENO);
      ::dup2(out, STDERR_FILENO);
    }
    if (::chdir("/") < 0) ::_exit(127);
    ::execv(self_executable().c_str(), argv);
    ::_exit(127);
  }
  report_write.reset();
  pid_t controller = -1;
  ssize_t n;
  while ((n = ::read(report_read.get(), &controller, sizeof controller)) < 0 && errno == EINTR) {
  }
  while (::waitpid(middle, nullptr, 0) < 0 && errno == EINTR) {
  }
  if (n != sizeof controller || controller <= 0) {
    return Error::failure("cannot start the hostchanfs controller: fork failed");
  }
  UniqueFd pidfd(open_pidfd(controller));
  return pidfd;  // may be empty if it already exited: then connecting decides
}

}  // namespace

std::string default_run_dir() {
  const char* env = std::getenv("HOSTCHANFS_RUN_DIR");
  return env && *env ? std::string(env) : std::string("/run/hostchanfs");
}

Expected<void> make_run_dir(const std::string& run_dir) {
  if (run_dir.empty() || run_dir.front() != '/') {
    return Error::bad_input(fmt::format("run dir \"{}\" is not an absolute path", run_dir));
  }
  std::size_t pos = 0;
  while (pos != std::string::npos) {
    pos = run_dir.find('/', pos + 1);
    std::string prefix = run_dir.substr(0, pos);
    bool last = pos == std::string::npos;
    if (::mkdir(prefix.c_str(), last ? 0700 : 0755) < 0 && errno != EEXIST) {
      return Error::failure(fmt::format("cannot make run dir {}: {}", prefix, errno_text(last_errc())));
    }
  }
  return success();
}

// Lets the request helpers below reach the socket without widening the public API.
struct ControllerClientAccess {
  static Expected<json> call(ControllerClient& client, const json& request) {
    if (auto sent = send_line(client.sock_.get(), request); !sent) {
      return Error::failure(fmt::format("lost the controller: {}", errno_text(sent.error())));
    }
    auto line = read_line(client.sock_.get(), client.pending_);
    if (!line) {
      return Error::failure(fmt::format("lost the controller before it answered: {} (see {})",
                                        errno_text(line.error()), log_path(client.run_dir_)));
    }
    json answer;
    try {
      answer = json::parse(line.value());
    } catch (const json::exception& ex) {
      return Error::failure(fmt::format("the controller answered garbage: {}", ex.what()));
    }
    if (!answer.value("ok", false)) return answer_error(answer);
    return answer;
  }
  static ControllerClient make(UniqueFd fd, const std::string& run_dir) {
    return ControllerClient(std::move(fd), run_dir);
  }
};

Expected<ControllerClient> ControllerClient::connect_existing(const std::string& run_dir) {
  HC_TRY(fd, connect_socket(run_dir));
  return ControllerClientAccess::make(std::move(fd), run_dir);
}

Expected<ControllerClient> ControllerClient::connect_if_channels(const std::string& run_dir) {
  auto client = connect_existing(run_dir);
  if (client || client.error().kind != Error::Kind::kNotFound) return client;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(registry_dir(run_dir), ec)) {
    if (entry.path().extension() == ".json") return connect(run_dir);
  }
  return client;
}

Expected<ControllerClient> ControllerClient::connect(const std::string& run_dir) {
  auto fd = connect_socket(run_dir);
  if (fd) return ControllerClientAccess::make(std::move(fd).value(), run_dir);
  if (fd.error().kind != Error::Kind::kNotFound) return fd.error();

  HC_TRY(controller, spawn_controller(run_dir));
  auto deadline = std::chrono::steady_clock::now() + kControllerStartTimeout;
  for (;;) {
    auto again = connect_socket(run_dir);
    if (again) return ControllerClientAccess::make(std::move(again).value(), run_dir);
    if (again.error().kind != Error::Kind::kNotFound) return again.error();
    bool died = false;
    if (controller) {
      pollfd p{controller.get(), POLLIN, 0};
      died = ::poll(&p, 1, 20) > 0;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    // It may have lost the lock race to another controller: one last try, then give up.
    if (died || std::chrono::steady_clock::now() > deadline) {
      auto last = connect_socket(run_dir);
      if (last) return ControllerClientAccess::make(std::move(last).value(), run_dir);
      return Error::failure(fmt::format(
          "the hostchanfs controller did not start: see {}", log_path(run_dir)));
    }
  }
}

Expected<CreateResult> ControllerClient::create(const ChannelSpec& spec,
                                                const ChannelOptions& options,
                                                const Owner& owner) {
  json request{{"op", "create"}, {"spec", spec}, {"max_inodes", options.max_inodes}};
  request["uid"] = options.uid ? json(*options.uid) : json(nullptr);
  request["gid"] = options.gid ? json(*options.gid) : json(nullptr);
  request["owner"] = {{"id", owner.id}, {"pid", owner.pid ? json(*owner.pid) : json(nullptr)}};
  HC_TRY(answer, ControllerClientAccess::call(*this, request));
  try {
    CreateResult result;
    answer.at("channel").get_to(result.channel);
    result.existed = answer.value("existed", false);
    return result;
  } catch (const json::exception& ex) {
    return Error::failure(fmt::format("the controller answered garbage: {}", ex.what()));
  }
}

Expected<void> ControllerClient::expose(const std::string& host_path, pid_t pid,
                                        const std::string& rootfs) {
  json request{{"op", "expose"}, {"host_path", host_path}, {"pid", pid}, {"rootfs", rootfs}};
  HC_TRY(answer, ControllerClientAccess::call(*this, request));
  (void)answer;
  return success();
}

Expected<void> ControllerClient::remove(const std::string& host_path) {
  HC_TRY(answer, ControllerClientAccess::call(*this, json{{"op", "remove"}, {"host_path", host_path}}));
  (void)answer;
  return success();
}

Expected<std::vector<ChannelInfo>> ControllerClient::list() {
  HC_TRY(answer, ControllerClientAccess::call(*this, json{{"op", "list"}}));
  try {
    return answer.at("channels").get<std::vector<ChannelInfo>>();
  } catch (const json::exception& ex) {
    return Error::failure(fmt::format("the controller answered garbage: {}", ex.what()));
  }
}

}  // namespace hostchanfs::mountctl
