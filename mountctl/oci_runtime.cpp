#include "mountctl/oci_runtime.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>

#include <fmt/format.h>

#include "mountctl/run_bundle.hpp"
#include "sys/errno_text.hpp"
#include "sys/read_file.hpp"

namespace hostchanfs::mountctl {

namespace {

constexpr const char* kCgroupRoot = "/sys/fs/cgroup";
constexpr const char* kCgroupUnified = "/sys/fs/cgroup/unified";

bool is_executable_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

std::optional<std::string> find_in_path(const std::string& name) {
  const char* env = std::getenv("PATH");
  std::istringstream dirs(env && *env ? env : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (dir.empty() || dir.front() != '/') continue;
    std::string path = dir + "/" + name;
    if (is_executable_file(path)) return path;
  }
  return std::nullopt;
}

OciRuntime runtime_at(std::string path) {
  auto slash = path.rfind('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  return OciRuntime{std::move(path), std::move(name)};
}

// What a command we ran wrote, first line only, for a one-line error.
std::string first_line(const std::string& text) {
  auto end = text.find('\n');
  return text.substr(0, end);
}

struct Outcome {
  int status = -1;
  std::string output;  // stdout and stderr, when captured
};

// Runs the runtime with `args`. With `pass_stdio` it gets our stdin, stdout and stderr
// (which it hands to the container); otherwise its output is captured.
Expected<Outcome> call_runtime(const OciRuntime& runtime, const std::vector<std::string>& args,
                               bool pass_stdio) {
  std::vector<std::string> argv = {runtime.name};
  argv.insert(argv.end(), args.begin(), args.end());
  Exec exec(argv);
  exec.program(runtime.path).cwd("/");
  UniqueFd output;
  if (pass_stdio) {
    exec.place_fd(STDIN_FILENO, STDIN_FILENO).place_fd(STDOUT_FILENO, STDOUT_FILENO).place_fd(STDERR_FILENO, STDERR_FILENO);
  } else {
    output.reset(::memfd_create("runtime-output", MFD_CLOEXEC));
    if (!output) return Error::failure(fmt::format("cannot make a memfd: {}", errno_text(last_errc())));
    exec.place_fd(output.get(), STDOUT_FILENO).place_fd(output.get(), STDERR_FILENO);
  }
  auto child = Child::spawn(exec);
  if (!child) {
    return Error::failure(fmt::format("cannot start {}: {}", runtime.path, errno_text(child.error())));
  }
  Outcome outcome;
  outcome.status = child.value().wait();
  if (output) outcome.output = read_small_file(fmt::format("/proc/self/fd/{}", output.get()));
  return outcome;
}

Error runtime_failed(const OciRuntime& runtime, const std::string& what, const Outcome& outcome) {
  std::string said = first_line(outcome.output);
  return Error::failure(fmt::format("{} could not {} (exit status {}){}", runtime.path, what, outcome.status,
                                    said.empty() ? "" : ": " + said));
}

}  // namespace

std::optional<std::string> crun_cgroup_problem() {
  struct statfs root {}, unified {};
  if (::statfs(kCgroupRoot, &root) < 0 || root.f_type != TMPFS_MAGIC) return std::nullopt;
  if (::statfs(kCgroupUnified, &unified) < 0 || unified.f_type != CGROUP2_SUPER_MAGIC) return std::nullopt;
  std::string controllers = read_small_file(std::string(kCgroupUnified) + "/cgroup.controllers");
  while (!controllers.empty() && (controllers.back() == '\n' || controllers.back() == ' ')) controllers.pop_back();
  if (controllers.empty()) return std::nullopt;
  std::string first = controllers.substr(0, controllers.find(' '));
  return fmt::format(
      "this host's cgroups are hybrid and cgroup2 ({}) holds controllers ({}), which crun "
      "refuses: mount the v1 hierarchy of each (mount -t cgroup -o {} cgroup /sys/fs/cgroup/{})",
      kCgroupUnified, controllers, first, first);
}

Expected<OciRuntime> choose_runtime(const std::string& requested) {
  if (requested.empty()) {
    if (auto crun = find_in_path("crun"); crun && !crun_cgroup_problem()) return runtime_at(*crun);
    if (auto runc = find_in_path("runc")) return runtime_at(*runc);
    if (auto crun = find_in_path("crun")) {
      return Error::bad_input(fmt::format("crun cannot run here and runc is not installed: {}",
                                          *crun_cgroup_problem()));
    }
    return Error::bad_input(
        "no OCI runtime: install crun or runc (Debian packages of those names), or give --runtime PATH");
  }
  std::optional<std::string> path;
  if (requested.find('/') != std::string::npos) {
    if (is_executable_file(requested)) path = requested;
  } else {
    path = find_in_path(requested);
  }
  if (!path) {
    return Error::bad_input(fmt::format(
        "--runtime \"{}\" is not an executable program: give crun, runc or the path of an OCI runtime",
        requested));
  }
  OciRuntime runtime = runtime_at(*path);
  if (runtime.name == "crun") {
    if (auto problem = crun_cgroup_problem()) {
      return Error::bad_input(fmt::format("--runtime {}: {}; or use runc", requested, *problem));
    }
  }
  return runtime;
}

// ---------------------------------------------------------------------------------------

RuntimeContainer::~RuntimeContainer() {
  if (created_) (void)remove();
}

Expected<pid_t> RuntimeContainer::create(const std::string& bundle, const std::string& pid_file) {
  // Marked first: a runtime that fails halfway may still have left state to delete.
  created_ = true;
  HC_TRY(outcome, call_runtime(runtime_, {"create", "--bundle", bundle, "--pid-file", pid_file, id_}, true));
  if (outcome.status != 0) return runtime_failed(runtime_, "create the container " + id_, outcome);
  std::string text = read_small_file(pid_file);
  pid_t pid = static_cast<pid_t>(std::atol(text.c_str()));
  if (pid <= 0) {
    return Error::failure(fmt::format("{} created the container {} but wrote no pid to {}", runtime_.path, id_, pid_file));
  }
  return pid;
}

Expected<void> RuntimeContainer::start() {
  HC_TRY(outcome, call_runtime(runtime_, {"start", id_}, false));
  if (outcome.status != 0) return runtime_failed(runtime_, "start the container " + id_, outcome);
  return success();
}

Expected<void> RuntimeContainer::remove() {
  created_ = false;
  HC_TRY(outcome, call_runtime(runtime_, {"delete", "--force", id_}, false));
  if (outcome.status != 0) return runtime_failed(runtime_, "delete the container " + id_, outcome);
  return success();
}

// ---------------------------------------------------------------------------------------

Expected<RunGuard> RunGuard::start(const OciRuntime& runtime, const std::string& id,
                                   const std::string& bundle_dir) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) < 0) {
    return Error::failure(fmt::format("cannot make a pipe: {}", errno_text(last_errc())));
  }
  UniqueFd ours(fds[1]), theirs(fds[0]);
  auto child = Child::fork([&] {
    for (int sig : {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGUSR1, SIGUSR2}) ::signal(sig, SIG_IGN);
    // Nothing of ours stays open in it but the pipe's end and stderr: a connection to the
    // controller, our stdout held open for a reader that waits for its end, ...
    int keep = theirs.get();
    ::close_range(3, static_cast<unsigned>(keep - 1), 0);
    ::close_range(static_cast<unsigned>(keep + 1), ~0U, 0);
    int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    ::dup2(null, STDIN_FILENO);
    ::dup2(null, STDOUT_FILENO);
    char word = 0;
    ssize_t n;
    while ((n = ::read(keep, &word, 1)) < 0 && errno == EINTR) {
    }
    if (n == 1) return 0;  // we cleaned up ourselves
    RuntimeContainer container(runtime, id);
    (void)container.remove();
    remove_bundle(bundle_dir);
    return 0;
  });
  if (!child) return Error::failure(fmt::format("cannot fork: {}", errno_text(child.error())));
  return RunGuard(std::move(child).value(), std::move(ours));
}

RunGuard::~RunGuard() {
  if (!pipe_) return;
  char done = 'd';
  [[maybe_unused]] ssize_t n = ::write(pipe_.get(), &done, 1);
  pipe_.reset();
  child_.wait();
}

}  // namespace hostchanfs::mountctl
