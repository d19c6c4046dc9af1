#include "mountctl/keeper.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "fs/session_record.hpp"
#include "mountctl/client.hpp"
#include "mountctl/run_dir.hpp"
#include "sys/pidfd.hpp"
#include "sys/read_file.hpp"
#include "sys/child.hpp"
#include "sys/errno_text.hpp"
#include "sys/exit_status.hpp"
#include "sys/log.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::mountctl {

namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kStopGrace = std::chrono::seconds(5);
// A daemon that crashes (a signal other than SIGKILL: an abort, a fault) this soon after
// its start, this many times in a row, is crashing at start: the next start waits
// kCrashLoopPause, so that a crash loop does not spin a core. A daemon killed (SIGKILL: an
// operator, the OOM killer) is restarted at once, however often.
constexpr auto kQuickDeath = std::chrono::milliseconds(200);
constexpr int kQuickDeathsBeforePause = 10;
constexpr auto kCrashLoopPause = std::chrono::seconds(1);

Result<Child> start_daemon(const KeeperRequest& r, bool first) {
  std::vector<std::string> argv = {"hostchanfs", r.serve_args.front()};
  if (first && r.ready_fd >= 0) {
    argv.push_back("--ready-fd");
    argv.push_back(std::to_string(r.ready_fd));
  }
  argv.insert(argv.end(), r.serve_args.begin() + 1, r.serve_args.end());
  Exec serve(std::move(argv));
  serve.program("/proc/self/exe");
  // Our descriptors (/dev/fuse, the memfds, the record) are inherited as they are: the
  // controller placed them without close-on-exec. A keeper that dies takes its daemon
  // along, so that a new keeper never finds an old daemon serving beside its own.
  serve.die_with_parent(SIGKILL);
  return Child::spawn(serve);
}

// Waits for the daemon's end, a stop signal or the controller's end, for at most
// `timeout` (negative: no bound). A descriptor of -1 is not watched.
enum class Event { kDaemonEnded, kStop, kControllerEnded, kTimeout };
Event wait_event(int pidfd, int signal_fd, int controller_pidfd, std::chrono::milliseconds timeout) {
  pollfd fds[3] = {{signal_fd, POLLIN, 0}, {pidfd, POLLIN, 0}, {controller_pidfd, POLLIN, 0}};
  int rc;
  while ((rc = ::poll(fds, 3, static_cast<int>(timeout.count()))) < 0 && errno == EINTR) {
  }
  if (rc <= 0) return Event::kTimeout;
  if (fds[0].revents & POLLIN) return Event::kStop;
  if (fds[1].revents) return Event::kDaemonEnded;
  return Event::kControllerEnded;
}

// The controller of `run_dir` died: bring up the next one, which adopts every channel in
// the registry (this one too), and watch it. Empty when there is none to watch (no
// channel is registered any more, or it cannot start: the next command tries again).
UniqueFd next_controller(const std::string& run_dir, const std::string& name) {
  auto log = log::get("keeper");
  auto client = ControllerClient::connect_if_channels(run_dir);
  if (!client) {
    log->warn("{}: keeper: the controller died and none could be started: {}", name, client.error().message);
    return UniqueFd();
  }
  pid_t pid = static_cast<pid_t>(std::atol(read_small_file(run_dir + "/" + kPidName).c_str()));
  auto pidfd = pid > 0 ? open_pidfd(pid) : Result<UniqueFd>(std::errc::no_such_process);
  if (!pidfd) return UniqueFd();
  log->info("{}: keeper: the controller died; controller pid {} took over", name, pid);
  return std::move(pidfd).value();
}

}  // namespace

int keep_main(const KeeperRequest& r) {
  auto log = log::get("keeper");
  if (r.serve_args.size() < 2 || r.serve_args.front() != "serve") {
    return print_error("hostchanfs keep", "give the daemon's command after --: serve ... MOUNTPOINT", kExitUsage);
  }
  if (::fcntl(r.session_fd, F_GETFD) < 0) {
    return print_error("hostchanfs keep",
                       "--session-fd " + std::to_string(r.session_fd) + " is not an open descriptor", kExitUsage);
  }
  const std::string& name = r.serve_args.back();
  sigset_t stop;
  sigemptyset(&stop);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&stop, sig);
  ::sigprocmask(SIG_BLOCK, &stop, nullptr);
  UniqueFd signal_fd(::signalfd(-1, &stop, SFD_CLOEXEC));
  if (!signal_fd) {
    log->error("{}: keeper: cannot read signals: {}", name, errno_text(last_errc()));
    return kExitFailure;
  }
  UniqueFd ready(r.ready_fd);
  // Our parent is the controller that started us (or init, when it is already gone).
  UniqueFd controller;
  if (!r.run_dir.empty()) {
    auto parent = open_pidfd(::getppid());
    if (parent) controller = std::move(parent).value();
  }
  int quick_deaths = 0;
  for (bool first = true;; first = false) {
    auto generation = fs::begin_generation(r.session_fd);
    if (!generation) {
      log->error("{}: keeper: cannot write the session record: {}", name, errno_text(generation.error()));
      return kExitFailure;
    }
    auto started = Clock::now();
    auto daemon = start_daemon(r, first);
    ready.reset();  // the first daemon has it now (or failed to start: the controller sees EOF)
    if (!daemon) {
      log->error("{}: keeper: cannot start the daemon: {}", name, errno_text(daemon.error()));
      return kExitFailure;
    }
    (void)fs::record_daemon_pid(r.session_fd, daemon.value().pid());
    if (!first) log->info("{}: daemon #{} started (pid {})", name, generation.value(), daemon.value().pid());

    Event event;
    while ((event = wait_event(daemon.value().pidfd(), signal_fd.get(), controller.get(),
                               std::chrono::milliseconds(-1))) == Event::kControllerEnded) {
      controller = next_controller(r.run_dir, name);
    }
    if (event == Event::kStop) {
      log->info("{}: keeper stopping: daemon pid {} is told to stop", name, daemon.value().pid());
      daemon.value().terminate(kStopGrace);
      return kExitOk;
    }
    pid_t pid = daemon.value().pid();
    int status = daemon.value().wait();
    if (status < 128) {
      // The daemon ended by itself: the connection is gone (unmounted), or it refused.
      if (status != 0) log->error("{}: daemon pid {} exited with status {}: not restarted", name, pid, status);
      return status;
    }
    bool quick = status != 128 + SIGKILL && Clock::now() - started < kQuickDeath;
    quick_deaths = quick ? quick_deaths + 1 : 0;
    log->warn("{}: daemon pid {} was killed by signal {}: restarting it on the same connection",
              name, pid, status - 128);
    if (quick_deaths >= kQuickDeathsBeforePause &&
        wait_event(-1, signal_fd.get(), -1, kCrashLoopPause) == Event::kStop) {
      return kExitOk;
    }
  }
}

}  // namespace hostchanfs::mountctl
