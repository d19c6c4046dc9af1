#include "mountctl/controller.hpp"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <string>
#include <variant>

#include <fmt/format.h>

#include "mountctl/channel.hpp"
#include "mountctl/expose.hpp"
#include "mountctl/peer.hpp"
#include "mountctl/protocol.hpp"
#include "mountctl/registry.hpp"
#include "mountctl/run_dir.hpp"
#include "sys/errno_text.hpp"
#include "sys/log.hpp"
#include "sys/pidfd.hpp"
#include "sys/unix_socket.hpp"

namespace hostchanfs::mountctl {

namespace {

class Controller {
 public:
  explicit Controller(std::string run_dir)
      : run_dir_(std::move(run_dir)), registry_(run_dir_), log_(log::get("controller")) {}
  int run();

 private:
  enum class Source { kListen, kSignal, kConnection, kDaemon, kOwner, kLingering };
  struct Watch {
    Source source;
    std::string host_path;  // for kDaemon and kOwner
  };
  struct Connection {
    UniqueFd fd;
    std::string pending;
  };

  Expected<void> open_run_dir();
  void watch(int fd, Source source, std::string host_path = {});
  void unwatch(int fd);
  void on_connection_ready(int fd);
  void accept_connection();
  json answer(const std::string& line, const ucred& peer);
  json handle(const CreateRequest& request);
  json handle(const ExposeRequest& request);
  json handle(const RemoveRequest& request);
  json handle(const ListRequest& request);
  json handle(const PingRequest& request);
  void on_daemon_exit(const std::string& host_path);
  void on_owner_exit(const std::string& host_path);
  Expected<void> remove_channel(const std::string& host_path);
  void load_registry();
  void teardown();

  std::string run_dir_;
  Registry registry_;
  std::shared_ptr<spdlog::logger> log_;
  UniqueFd lock_, listen_, signal_, epoll_;
  std::map<int, Watch> watches_;
  std::map<int, Connection> connections_;
  std::map<std::string, Channel> channels_;
  // Daemons of removed channels still serving a lazily detached mount, by pidfd.
  struct Lingering {
    pid_t pid;
    UniqueFd pidfd;
  };
  std::map<int, Lingering> lingering_;
  bool stopping_ = false;
};

Expected<void> Controller::open_run_dir() {
  HC_TRYV(make_run_dir(run_dir_));
  HC_TRYV(registry_.make_dir());
  HC_TRY(lock, claim_run_dir(run_dir_));
  lock_ = std::move(lock);
  // We hold the lock, so a socket file left here is stale.
  std::string sock_path = socket_path(run_dir_);
  ::unlink(sock_path.c_str());
  auto listening = listen_unix(sock_path, 0600, 64);
  if (!listening) {
    if (listening.error() == std::errc::filename_too_long) {
      return Error::bad_input(fmt::format("run dir {} is too long for a socket path", run_dir_));
    }
    return Error::failure(fmt::format("cannot listen on {}: {}", sock_path, errno_text(listening.error())));
  }
  listen_ = std::move(listening).value();
  return success();
}

void Controller::watch(int fd, Source source, std::string host_path) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) < 0) {
    log_->error("epoll_ctl add fd {}: {}", fd, errno_text(last_errc()));
  }
  watches_[fd] = Watch{source, std::move(host_path)};
}

void Controller::unwatch(int fd) {
  if (fd < 0) return;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  watches_.erase(fd);
}

// Channels a previous controller left (Registry::load): adopted ones are watched again;
// one whose owner has died since goes now.
void Controller::load_registry() {
  for (Channel& ch : registry_.load()) {
    std::string host = ch.spec.host_path;
    if (ch.daemon_pidfd) watch(ch.daemon_pidfd.get(), Source::kDaemon, host);
    if (ch.owner_pidfd) watch(ch.owner_pidfd.get(), Source::kOwner, host);
    bool owner_gone = ch.owner_pid && !ch.owner_pidfd;
    registry_.save(ch);
    channels_.emplace(host, std::move(ch));
    if (owner_gone) on_owner_exit(host);
  }
}

void Controller::accept_connection() {
  for (;;) {
    UniqueFd fd(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd) return;  // EAGAIN: all accepted
    // A client that stops reading must not stall every channel.
    timeval timeout{5, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    int raw = fd.get();
    connections_[raw] = Connection{std::move(fd), {}};
    watch(raw, Source::kConnection);
  }
}

void Controller::on_connection_ready(int fd) {
  auto it = connections_.find(fd);
  if (it == connections_.end()) return;
  Connection& conn = it->second;
  ucred peer = peer_of(fd);
  auto batch = read_available_lines(fd, conn.pending);
  bool close_it = !batch || batch.value().closed;
  if (batch) {
    for (const auto& line : batch.value().lines) {
      if (!send_line(fd, answer(line, peer))) close_it = true;
      if (peer.uid != 0) close_it = true;
    }
  }
  if (close_it) {
    unwatch(fd);
    connections_.erase(it);
  }
}

json Controller::answer(const std::string& line, const ucred& peer) {
  try {
    json request = json::parse(line);
    if (auto allowed = authorize_peer(peer, run_dir_); !allowed) return encode_error(allowed.error());
    auto decoded = decode_request(request);
    if (!decoded) return encode_error(decoded.error());
    return std::visit([this](const auto& r) { return handle(r); }, decoded.value());
  } catch (const json::exception& ex) {
    return encode_error(Error::bad_input(fmt::format("bad request: {}", ex.what())));
  }
}

json Controller::handle(const PingRequest&) { return encode_answer(::getpid()); }

json Controller::handle(const CreateRequest& request) {
  // The controller does not trust the client's parsing: the spec is checked again here.
  auto spec = parse_spec(request.spec.to_string());
  if (!spec) return encode_error(spec.error());
  const ChannelOptions& options = request.options;
  const Owner& owner = request.owner;

  const std::string& host = spec.value().host_path;
  if (auto it = channels_.find(host); it != channels_.end()) {
    if (it->second.owner_id == owner.id && it->second.spec == spec.value()) {
      return encode_answer(CreateResult{it->second.info(), true});
    }
    return encode_error(Error::bad_input(fmt::format(
        "host path \"{}\" is already a channel (owner {}): give another host path, or "
        "remove it with `hostchanfs umount {}`",
        host, it->second.owner_id, host)));
  }
  UniqueFd owner_pidfd;
  if (owner.pid) {
    auto pidfd = open_pidfd(*owner.pid);
    if (!pidfd) {
      return encode_error(Error::bad_input(fmt::format("owner pid {} is not running", *owner.pid)));
    }
    owner_pidfd = std::move(pidfd).value();
  }
  auto started = start_channel(spec.value(), options, owner);
  if (!started) return encode_error(started.error());
  Channel ch = std::move(started).value();
  ch.owner_pidfd = std::move(owner_pidfd);
  watch(ch.daemon_pidfd.get(), Source::kDaemon, host);
  if (ch.owner_pidfd) watch(ch.owner_pidfd.get(), Source::kOwner, host);
  ChannelInfo info = ch.info();
  // The daemon's own default, remembered so that `ls` still shows it if the daemon dies.
  if (ch.max_inodes == 0) ch.max_inodes = info.max_inodes;
  registry_.save(ch);
  channels_.emplace(host, std::move(ch));
  return encode_answer(CreateResult{info, false});
}

json Controller::handle(const ExposeRequest& request) {
  auto it = channels_.find(request.host_path);
  if (it == channels_.end()) {
    return encode_error(Error::not_found(fmt::format("no channel at {}", request.host_path)));
  }
  const Channel& ch = it->second;
  auto done = expose_into(request.host_path, request.pid, request.rootfs, ch.spec.container_path,
                          ch.spec.read_only);
  if (!done) return encode_error(done.error());
  return encode_answer(std::monostate{});
}

Expected<void> Controller::remove_channel(const std::string& host) {
  auto it = channels_.find(host);
  if (it == channels_.end()) return Error::not_found(fmt::format("no channel at {}", host));
  Channel& ch = it->second;
  unwatch(ch.daemon_pidfd.get());
  unwatch(ch.owner_pidfd.get());
  auto stopped = stop_channel(ch);
  if (ch.daemon_pidfd) {
    int fd = ch.daemon_pidfd.get();
    lingering_[fd] = Lingering{ch.daemon_pid, std::move(ch.daemon_pidfd)};
    watch(fd, Source::kLingering);
  }
  registry_.forget(host);
  channels_.erase(it);
  return stopped;
}

json Controller::handle(const RemoveRequest& request) {
  auto removed = remove_channel(request.host_path);
  if (!removed) return encode_error(removed.error());
  return encode_answer(std::monostate{});
}

json Controller::handle(const ListRequest&) {
  std::vector<ChannelInfo> list;
  for (const auto& [host, ch] : channels_) list.push_back(ch.info());
  return encode_answer(list);
}

void Controller::on_daemon_exit(const std::string& host) {
  auto it = channels_.find(host);
  if (it == channels_.end()) return;
  Channel& ch = it->second;
  int status = 0;
  std::string how = "ended";
  if (::waitpid(ch.daemon_pid, &status, WNOHANG) == ch.daemon_pid) {
    how = WIFSIGNALED(status) ? fmt::format("was killed by signal {}", WTERMSIG(status))
                              : fmt::format("exited with status {}", WEXITSTATUS(status));
  }
  log_->error("channel {}: daemon pid {} {}: channel marked failed (umount removes it)", host,
              ch.daemon_pid, how);
  unwatch(ch.daemon_pidfd.get());
  ch.daemon_pidfd.reset();
  ch.state = ChannelState::kFailed;
  registry_.save(ch);
}

void Controller::on_owner_exit(const std::string& host) {
  log_->info("channel {}: its owner exited: removing it", host);
  if (auto removed = remove_channel(host); !removed) {
    log_->error("channel {}: {}", host, removed.error().message);
  }
}

void Controller::teardown() {
  while (!channels_.empty()) {
    std::string host = channels_.begin()->first;
    if (auto removed = remove_channel(host); !removed) {
      log_->error("channel {}: {}", host, removed.error().message);
    }
  }
  for (auto& [fd, l] : lingering_) stop_lingering(l.pid, fd, true);
  lingering_.clear();
  ::unlink(socket_path(run_dir_).c_str());
  ::unlink(pid_path(run_dir_).c_str());
}

int Controller::run() {
  if (auto opened = open_run_dir(); !opened) {
    if (opened.error().kind == Error::Kind::kAlreadyRunning) {
      log_->info("{}", opened.error().message);
      return kExitOk;  // the run dir is served: nothing to do
    }
    log_->error("{}", opened.error().message);
    return kExitFailure;
  }
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);
  signal_.reset(::signalfd(-1, &mask, SFD_CLOEXEC));
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!signal_ || !epoll_) {
    log_->error("cannot set up the event loop: {}", errno_text(last_errc()));
    return kExitFailure;
  }
  watch(listen_.get(), Source::kListen);
  watch(signal_.get(), Source::kSignal);
  load_registry();
  log_->info("controller of {} ready (pid {})", run_dir_, ::getpid());

  while (!stopping_) {
    epoll_event events[16];
    int n = ::epoll_wait(epoll_.get(), events, 16, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      log_->error("epoll_wait: {}", errno_text(last_errc()));
      break;
    }
    for (int i = 0; i < n && !stopping_; ++i) {
      int fd = events[i].data.fd;
      auto it = watches_.find(fd);
      if (it == watches_.end()) continue;  // removed by an earlier event of this batch
      Watch w = it->second;
      switch (w.source) {
        case Source::kListen: accept_connection(); break;
        case Source::kConnection: on_connection_ready(fd); break;
        case Source::kDaemon: on_daemon_exit(w.host_path); break;
        case Source::kOwner: on_owner_exit(w.host_path); break;
        case Source::kLingering: {
          auto l = lingering_.find(fd);
          if (l != lingering_.end()) {
            log_->info("daemon pid {} of a detached channel exited", l->second.pid);
            stop_lingering(l->second.pid, fd, false);
            unwatch(fd);
            lingering_.erase(l);
          }
          break;
        }
        case Source::kSignal: {
          signalfd_siginfo si{};
          [[maybe_unused]] ssize_t r = ::read(fd, &si, sizeof si);
          log_->info("signal {}: removing every channel and exiting", si.ssi_signo);
          stopping_ = true;
          break;
        }
      }
    }
  }
  teardown();
  return kExitOk;
}

}  // namespace

int run_controller(const std::string& run_dir) { return Controller(run_dir).run(); }

}  // namespace hostchanfs::mountctl
