#include "sys/child.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "sys/pidfd.hpp"

extern char** environ;

namespace hostchanfs {

namespace {

std::vector<char*> pointers_to(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// In a child: PR_SET_PDEATHSIG, and the end if the parent died before it took effect.
void die_with(pid_t parent, int sig) noexcept {
  if (sig == 0) return;
  ::prctl(PR_SET_PDEATHSIG, sig);
  if (::getppid() != parent) ::_exit(125);
}

}  // namespace

void unblock_all_signals() noexcept {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

int exit_status_of(int wait_status) noexcept {
  return WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status);
}

// ---------------------------------------------------------------------------------------

Exec::Exec(std::vector<std::string> argv) : argv_(std::move(argv)) { argv_ptrs_ = pointers_to(argv_); }

Exec& Exec::program(std::string path) {
  program_ = std::move(path);
  return *this;
}

Exec& Exec::search_path() {
  search_path_ = true;
  return *this;
}

Exec& Exec::env(const std::vector<std::string>& extra) {
  env_.clear();
  for (char** e = environ; *e; ++e) env_.emplace_back(*e);
  env_.insert(env_.end(), extra.begin(), extra.end());
  env_ptrs_ = pointers_to(env_);
  return *this;
}

Exec& Exec::place_fd(int from, int to) {
  fds_.push_back({from, to});
  moved_.resize(fds_.size());
  return *this;
}

Exec& Exec::cwd(std::string dir) {
  cwd_ = std::move(dir);
  return *this;
}

Exec& Exec::die_with_parent(int sig) {
  death_signal_ = sig;
  return *this;
}

pid_t Exec::fork_exec() const noexcept {
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) exec_in_child(parent);
  return pid;
}

void Exec::exec_in_child(pid_t parent) const noexcept {
  die_with(parent, death_signal_);
  unblock_all_signals();
  // Sources move above every target first, so that placing one cannot clobber another;
  // the moved copies are close-on-exec, the placed ones are not.
  int floor = 3;
  bool stdin_placed = false;
  for (const auto& p : fds_) {
    floor = std::max(floor, p.to + 1);
    stdin_placed = stdin_placed || p.to == STDIN_FILENO;
  }
  for (std::size_t i = 0; i < fds_.size(); ++i) moved_[i] = ::fcntl(fds_[i].from, F_DUPFD_CLOEXEC, floor);
  if (!stdin_placed) {
    int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null > STDIN_FILENO) ::dup2(null, STDIN_FILENO);
    if (null == STDIN_FILENO) ::fcntl(null, F_SETFD, 0);
  }
  for (std::size_t i = 0; i < fds_.size(); ++i) ::dup2(moved_[i], fds_[i].to);
  if (!cwd_.empty() && ::chdir(cwd_.c_str()) != 0) ::_exit(127);
  const char* file = program_.empty() ? argv_ptrs_[0] : program_.c_str();
  char* const* argv = argv_ptrs_.data();
  if (!env_ptrs_.empty()) {
    if (search_path_) ::execvpe(file, argv, env_ptrs_.data());
    else ::execve(file, argv, env_ptrs_.data());
  } else {
    if (search_path_) ::execvp(file, argv);
    else ::execv(file, argv);
  }
  ::_exit(127);
}

// ---------------------------------------------------------------------------------------

Child::Child(Child&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)), pidfd_(std::move(o.pidfd_)), status_(std::exchange(o.status_, std::nullopt)) {}

Child& Child::operator=(Child&& o) noexcept {
  if (this != &o) {
    kill_and_reap();
    pid_ = std::exchange(o.pid_, -1);
    pidfd_ = std::move(o.pidfd_);
    status_ = std::exchange(o.status_, std::nullopt);
  }
  return *this;
}

Result<Child> Child::adopt(pid_t pid) {
  if (pid < 0) return last_errc();
  auto pidfd = open_pidfd(pid);  // our unreaped child: it cannot name another process
  if (!pidfd) {
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    return pidfd.error();
  }
  Child c;
  c.pid_ = pid;
  c.pidfd_ = std::move(pidfd).value();
  return c;
}

Result<Child> Child::fork(const std::function<int()>& body, int death_signal) {
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) {
    die_with(parent, death_signal);
    unblock_all_signals();
    int rc = 126;
    try {
      rc = body();
    } catch (...) {
    }
    ::_exit(rc);
  }
  return adopt(pid);
}

Result<Child> Child::spawn(const Exec& exec) { return adopt(exec.fork_exec()); }

int Child::wait() noexcept {
  if (status_) return *status_;
  if (pid_ <= 0) return -1;
  int st = 0;
  pid_t r;
  while ((r = ::waitpid(pid_, &st, 0)) < 0 && errno == EINTR) {
  }
  status_ = r == pid_ ? exit_status_of(st) : -1;
  return *status_;
}

std::optional<int> Child::wait_for(std::chrono::milliseconds timeout) noexcept {
  if (status_) return status_;
  if (pid_ <= 0) return -1;
  if (!wait_pidfd(pidfd_.get(), timeout)) return std::nullopt;
  return wait();
}

void Child::signal(int sig) noexcept {
  if (running()) (void)signal_pidfd(pidfd_.get(), sig);
}

bool Child::terminate(std::chrono::milliseconds grace) noexcept {
  if (!running()) return true;
  bool clean = terminate_pidfd(pidfd_.get(), grace);
  wait();
  return clean;
}

void Child::kill_and_reap() noexcept {
  if (running()) {
    (void)signal_pidfd(pidfd_.get(), SIGKILL);
    wait();
  }
  pid_ = -1;
  pidfd_.reset();
}

Child::Released Child::release() noexcept {
  Released r{std::exchange(pid_, -1), std::move(pidfd_)};
  status_.reset();
  return r;
}

// ---------------------------------------------------------------------------------------

Result<ChildReport> run_in_child(const std::function<int(int report_fd)>& body) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) < 0) return last_errc();
  UniqueFd report_read(fds[0]), report_write(fds[1]);
  HC_TRY(child, Child::fork([&] {
    report_read.reset();
    return body(report_write.get());
  }));
  report_write.reset();
  ChildReport result;
  char buf[512];
  for (;;) {
    ssize_t n = ::read(report_read.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    result.report.append(buf, static_cast<std::size_t>(n));
  }
  result.status = child.wait();
  return result;
}

Result<pid_t> spawn_detached(const Exec& exec) {
  HC_TRY(done, run_in_child([&](int report_fd) {
    ::setsid();
    pid_t pid = exec.fork_exec();
    [[maybe_unused]] ssize_t n = ::write(report_fd, &pid, sizeof pid);
    return pid < 0 ? 1 : 0;
  }));
  pid_t pid = -1;
  if (done.report.size() == sizeof pid) std::copy_n(done.report.data(), sizeof pid, reinterpret_cast<char*>(&pid));
  if (pid <= 0) return std::errc::resource_unavailable_try_again;  // the fork failed
  return pid;
}

}  // namespace hostchanfs
