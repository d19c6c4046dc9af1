#include "mountctl/run.hpp"

#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <optional>
#include <random>

#include <fmt/format.h>

#include "mountctl/client.hpp"
#include "mountctl/oci_hook.hpp"
#include "mountctl/oci_runtime.hpp"
#include "mountctl/run_bundle.hpp"
#include "mountctl/run_root.hpp"
#include "mountctl/run_seccomp.hpp"
#include "sys/child.hpp"
#include "sys/errno_text.hpp"
#include "sys/pidfd.hpp"
#include "sys/read_file.hpp"
#include "sys/size.hpp"

namespace hostchanfs::mountctl {

namespace {

constexpr const char* kProgram = "hostchanfs run";

// The signals passed on to the container; the first four end `run` too when they come
// before the container has started.
constexpr int kForwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT};
bool ends_us(int sig) { return sig == SIGHUP || sig == SIGINT || sig == SIGQUIT || sig == SIGTERM; }

// Below this a runtime cannot even start the container's process (Docker's floor too).
constexpr std::uint64_t kMinMemory = 6ull << 20;

int report_run(const Error& e) { return report(e, kProgram); }

struct Identity {
  uid_t uid = 0;
  gid_t gid = 0;
};

Expected<Identity> parse_user(const std::string& text) {
  Identity id;
  std::string user = text, group;
  if (auto colon = text.find(':'); colon != std::string::npos) {
    user = text.substr(0, colon);
    group = text.substr(colon + 1);
  }
  auto number = [](const std::string& s) -> std::optional<unsigned long> {
    if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 9) return std::nullopt;
    return std::stoul(s);
  };
  if (auto n = number(user)) {
    id.uid = static_cast<uid_t>(*n);
    id.gid = id.uid;
  } else if (struct passwd* pw = user.empty() ? nullptr : ::getpwnam(user.c_str())) {
    id.uid = pw->pw_uid;
    id.gid = pw->pw_gid;
  } else {
    return Error::bad_input(fmt::format(
        "--user \"{}\": no such user: give a uid or a user name, optionally :gid or :group", text));
  }
  if (!group.empty()) {
    if (auto n = number(group)) {
      id.gid = static_cast<gid_t>(*n);
    } else if (struct group* gr = ::getgrnam(group.c_str())) {
      id.gid = gr->gr_gid;
    } else {
      return Error::bad_input(fmt::format("--user \"{}\": no such group \"{}\"", text, group));
    }
  }
  return id;
}

// Everything the request says, checked; nothing is made yet.
struct RunPlan {
  ChannelSpec spec;
  Identity user;
  bool user_namespace = true;
  std::optional<std::uint64_t> memory;
  OciRuntime runtime;
  std::optional<ContainerRoot> root;
};

Expected<RunPlan> plan_run(const RunRequest& request) {
  RunPlan plan;
  if (::geteuid() != 0) {
    return Error::bad_input("hostchanfs run makes containers and mounts: run it as root");
  }
  if (request.specs.size() != 1) {
    return Error::bad_input(
        "give --host-channel once: a container gets one channel (its OCI annotation names one)");
  }
  HC_TRY(spec, parse_spec(request.specs.front()));
  plan.spec = spec;
  if (!request.user.empty()) {
    HC_TRY(user, parse_user(request.user));
    plan.user = user;
  }
  if (request.userns == "host") {
    plan.user_namespace = false;
  } else if (!request.userns.empty() && request.userns != "private") {
    return Error::bad_input(fmt::format(
        "--userns \"{}\" is neither private nor host: leave it out for a user namespace, or give host",
        request.userns));
  }
  if (plan.user_namespace && (plan.user.uid >= kUserNsSize || plan.user.gid >= kUserNsSize)) {
    return Error::bad_input(fmt::format(
        "--user \"{}\" is outside the container's user namespace (ids 0-{}): give a smaller id, or --userns host",
        request.user, kUserNsSize - 1));
  }
  if (!request.memory.empty()) {
    auto bytes = parse_size(request.memory);
    if (!bytes || bytes.value() < kMinMemory) {
      return Error::bad_input(fmt::format(
          "--memory \"{}\" is not a size of at least 6M (what a runtime needs to start a container): "
          "give bytes or a number with k, m or g",
          request.memory));
    }
    plan.memory = bytes.value();
  }
  std::string rootfs;
  if (!request.rootfs.empty()) {
    char real[PATH_MAX];
    struct stat st {};
    if (!::realpath(request.rootfs.c_str(), real) || ::stat(real, &st) < 0 || !S_ISDIR(st.st_mode)) {
      return Error::bad_input(fmt::format("--rootfs \"{}\" is not a directory", request.rootfs));
    }
    rootfs = real;
    if (rootfs == "/") {
      return Error::bad_input("--rootfs / is the host's own root: leave --rootfs out for a read-only view of it");
    }
  }
  HC_TRY(runtime, choose_runtime(request.runtime));
  plan.runtime = runtime;
  HC_TRY(root, ContainerRoot::open(rootfs));
  HC_TRYV(root.check_mount_point(plan.spec.container_path));
  plan.root.emplace(std::move(root));
  return plan;
}

// The binary the runtime calls as the hook: this one (or $HOSTCHANFS_SELF, as the client).
std::string hostchanfs_executable() {
  if (const char* self = std::getenv("HOSTCHANFS_SELF"); self && *self) return self;
  char path[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
  return n > 0 ? std::string(path, static_cast<std::size_t>(n)) : std::string("/proc/self/exe");
}

std::string new_container_id() {
  std::random_device random;
  return fmt::format("hostchanfs-{}-{:08x}", ::getpid(), random());
}

// The signals of kForwarded, blocked and read from a signalfd while the container runs;
// the old mask again when this goes.
class SignalRelay {
 public:
  SignalRelay() {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : kForwarded) sigaddset(&set, sig);
    ::sigprocmask(SIG_BLOCK, &set, &old_);
    fd_.reset(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
  }
  ~SignalRelay() { ::sigprocmask(SIG_SETMASK, &old_, nullptr); }
  SignalRelay(const SignalRelay&) = delete;
  SignalRelay& operator=(const SignalRelay&) = delete;

  int fd() const noexcept { return fd_.get(); }
  // The first signal that ends us among those that came (and are now taken), if any.
  std::optional<int> take_ending() {
    std::optional<int> ending;
    for (signalfd_siginfo si{}; ::read(fd_.get(), &si, sizeof si) == sizeof si;) {
      if (!ending && ends_us(static_cast<int>(si.ssi_signo))) ending = static_cast<int>(si.ssi_signo);
    }
    return ending;
  }
  // Passes what came on to the container (its own session: a terminal's ^C reaches us
  // only; if it shares our process group it had that one already).
  void forward(int pidfd, pid_t pid) {
    for (signalfd_siginfo si{}; ::read(fd_.get(), &si, sizeof si) == sizeof si;) {
      int sig = static_cast<int>(si.ssi_signo);
      bool from_terminal = si.ssi_code == SI_KERNEL && (sig == SIGINT || sig == SIGQUIT || sig == SIGWINCH);
      if (from_terminal && ::getpgid(pid) == ::getpgrp()) continue;
      (void)signal_pidfd(pidfd, sig);
    }
  }

 private:
  sigset_t old_{};
  UniqueFd fd_;
};

// Our channel: created now, and removed when this goes if it is still there and ours (the
// poststop hook normally removed it already). When the first controller is gone, a new
// connection takes the registry over.
class ChannelLease {
 public:
  ChannelLease(ControllerClient& client, std::string run_dir) : client_(client), run_dir_(std::move(run_dir)) {}
  ChannelLease(const ChannelLease&) = delete;
  ChannelLease& operator=(const ChannelLease&) = delete;
  Expected<void> create(const ChannelSpec& spec, const ChannelOptions& options, const Owner& owner) {
    HC_TRYV(client_.create(spec, options, owner));
    host_path_ = spec.host_path;
    owner_id_ = owner.id;
    return success();
  }
  ~ChannelLease() {
    if (host_path_.empty()) return;
    auto removed = client_.remove_if_owned(host_path_, owner_id_);
    if (removed) return;
    auto again = ControllerClient::connect_if_channels(run_dir_);
    if (!again) {
      if (again.error().kind != Error::Kind::kNotFound) report_run(again.error());
      return;
    }
    if (auto retried = again.value().remove_if_owned(host_path_, owner_id_); !retried) report_run(retried.error());
  }

 private:
  ControllerClient& client_;
  std::string run_dir_, host_path_, owner_id_;
};

struct Ended {
  int status = 0;
  bool lost_controller = false;
};

// Waits for the container's process (our child: we are its subreaper), passing signals
// on; stops it if the controller goes.
Ended wait_for(pid_t pid, int pidfd, SignalRelay& signals, int controller) {
  pollfd fds[] = {{pidfd, POLLIN, 0}, {signals.fd(), POLLIN, 0}, {controller, POLLIN | POLLRDHUP, 0}};
  Ended ended;
  for (;;) {
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[2].revents != 0 && fds[0].revents == 0) {
      ended.lost_controller = true;
      (void)signal_pidfd(pidfd, SIGKILL);
    }
    if (fds[0].revents != 0 || ended.lost_controller) break;
    if (fds[1].revents != 0) signals.forward(pidfd, pid);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  ended.status = exit_status_of(status);
  return ended;
}

// config.json for the plan: the profile of run_bundle.hpp, CMD, the hooks.
Expected<void> write_config(const RunPlan& plan, const RunRequest& request, Bundle& bundle) {
  ContainerConfig config;
  config.args = request.command;
  config.uid = plan.user.uid;
  config.gid = plan.user.gid;
  config.rootfs = bundle.rootfs();
  config.user_namespace = plan.user_namespace;
  config.memory_limit = plan.memory;
  HC_TRY(seccomp, default_oci_seccomp(seccomp_target_here(container_capabilities())));
  if (!seccomp) {
    print_error(kProgram, "warning: no seccomp profile (/usr/share/containers/seccomp.json, Debian package "
                          "golang-github-containers-common): the container runs without one", 0);
  }
  config.seccomp = std::move(seccomp);
  config.channel = plan.spec.to_string();
  config.charge = request.charge;
  config.hook_program = hostchanfs_executable();
  if (request.run_dir != kBuiltinRunDir) config.hook_args = {"--run-dir", request.run_dir};
  config.hooks_log = bundle.hooks_log();
  return bundle.write_config(make_oci_config(config));
}

int run_planned(RunPlan& plan, const RunRequest& request) {
  const std::string id = new_container_id();
  const std::string bundle_dir = bundles_dir(request.run_dir) + "/" + id;
  auto client = ControllerClient::connect(request.run_dir);
  if (!client) return report_run(client.error());
  SignalRelay signals;
  // The container's first process becomes our child once `create` has returned.
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
    return report_run(Error::failure(fmt::format("cannot become a subreaper: {}", errno_text(last_errc()))));
  }
  auto guard = RunGuard::start(plan.runtime, id, bundle_dir);
  if (!guard) return report_run(guard.error());

  ChannelLease channel(client.value(), request.run_dir);
  ChannelOptions options;
  if (plan.user_namespace) options.uid = options.gid = kUserNsHostId;
  options.charge = request.charge;
  if (auto created = channel.create(plan.spec, options, Owner{oci_owner_id(id), ::getpid()}); !created) {
    return report_run(created.error());
  }
  auto bundle = Bundle::make(bundles_dir(request.run_dir), id,
                             plan.user_namespace ? std::optional<uid_t>(kUserNsHostId) : std::nullopt);
  if (!bundle) return report_run(bundle.error());
  std::vector<std::string> mount_points = config_mount_points();
  mount_points.push_back(plan.spec.container_path);
  if (auto attached = plan.root->attach(bundle.value().rootfs()); !attached) return report_run(attached.error());
  if (auto made = plan.root->make_mount_points(mount_points); !made) return report_run(made.error());

  if (auto written = write_config(plan, request, bundle.value()); !written) return report_run(written.error());

  RuntimeContainer container(plan.runtime, id);
  auto pid = container.create(bundle.value().dir(), bundle.value().pid_file());
  if (!pid) {
    // crun writes a failing hook's one line there (runc quotes it in its own error).
    std::string hooks = read_small_file(bundle.value().hooks_log());
    if (!hooks.empty()) std::fwrite(hooks.data(), 1, hooks.size(), stderr);
    return report_run(pid.error());
  }
  // The container holds its own copy of the root now.
  plan.root->detach();
  auto pidfd = open_pidfd(pid.value());
  if (!pidfd) {
    return report_run(Error::failure(fmt::format("the container's process {} is gone: {}", pid.value(),
                                                 errno_text(pidfd.error()))));
  }
  if (auto ending = signals.take_ending()) return 128 + *ending;  // asked to stop before it began
  if (auto started = container.start(); !started) return report_run(started.error());

  Ended ended = wait_for(pid.value(), pidfd.value().get(), signals, client.value().descriptor());
  if (auto removed = container.remove(); !removed) return report_run(removed.error());
  if (ended.lost_controller) {
    return report_run(Error::failure(fmt::format(
        "lost the controller while the container ran (see {}): the container was stopped and its "
        "channel removed",
        log_path(request.run_dir))));
  }
  return ended.status;
}

}  // namespace

int run_main(const RunRequest& request) {
  if (request.command.empty()) return report_run(Error::bad_input("no command: give it after --"));
  auto plan = plan_run(request);
  if (!plan) return report_run(plan.error());
  const std::string& program = request.command.front();
  if (auto found = plan.value().root->find_program(program, container_search_path()); !found) {
    bool missing = found.error() == std::errc::no_such_file_or_directory;
    return print_error(kProgram, fmt::format("cannot run {}: {}", program, errno_text(found.error())),
                       missing ? 127 : 126);
  }
  return run_planned(plan.value(), request);
}

}  // namespace hostchanfs::mountctl
