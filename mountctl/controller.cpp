#include "mountctl/controller.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <string>
#include <variant>

#include <fmt/format.h>

#include "mountctl/bundle_watch.hpp"
#include "mountctl/channel.hpp"
#include "mountctl/connection.hpp"
#include "mountctl/expose.hpp"
#include "mountctl/metrics.hpp"
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

// Clients at once (each is a descriptor): the next one is turned away.
constexpr std::size_t kMaxClients = 256;
// The one place in a run dir where a channel may be (where the hook's default root is).
constexpr const char* kChannelsInRunDir = "channels";

// What makes the controller tear down and exit, read from a signalfd: blocked in every
// thread (the metrics server's too, which must be started after it is blocked).
sigset_t stop_signals() {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  return mask;
}

class Controller {
 public:
  Controller(RunDir run_dir, UniqueFd lock, UniqueFd listen, Registry registry,
             BundleWatch bundles)
      : run_dir_(std::move(run_dir)),
        lock_(std::move(lock)),
        listen_(std::move(listen)),
        registry_(std::move(registry)),
        bundles_(std::move(bundles)),
        log_(log::get("controller")) {}
  int run(const ControllerOptions& options);

 private:
  enum class Source { kListen, kSignal, kConnection, kKeeper, kOwner, kLingering, kBundles };
  struct Watch {
    Source source;
    std::string host_path;  // for kKeeper and kOwner
  };
  struct Client {
    Connection conn;
    ucred peer;
  };

  void watch(int fd, Source source, std::string host_path = {}, std::uint32_t events = EPOLLIN);
  void unwatch(int fd);
  void accept_clients();
  void on_client(int fd, std::uint32_t events);
  void serve_requests(Client& client);
  void drop(int fd);
  std::string answer_line(const std::string& line, const ucred& peer);
  json answer(const std::string& line, const ucred& peer);
  json handle(const CreateRequest& request);
  json handle(const ExposeRequest& request);
  json handle(const RemoveRequest& request);
  json handle(const LeaveRequest& request);
  Expected<bool> join(Channel& ch, const Member& member);
  LeaveOutcome drop_member(const std::string& host_path, const std::string& member_id);
  void on_bundles_gone();
  json handle(const ListRequest& request);
  json handle(const PingRequest& request);
  json handle(const MetricsRequest& request);
  Expected<void> serve_metrics(const std::string& address);
  void save(const Channel& ch);
  Expected<void> check_place(const std::string& host) const;
  void on_keeper_exit(const std::string& host_path);
  void on_owner_exit(const std::string& host_path);
  Expected<void> remove_channel(const std::string& host_path);
  void load_registry();
  void teardown();

  RunDir run_dir_;
  UniqueFd lock_, listen_;
  Registry registry_;
  BundleWatch bundles_;
  std::shared_ptr<spdlog::logger> log_;
  // What the metrics see of the channels (shared with the metrics server's threads).
  std::shared_ptr<MetricsBoard> board_ = std::make_shared<MetricsBoard>();
  std::unique_ptr<MetricsServer> metrics_server_;
  UniqueFd signal_, epoll_;
  std::map<int, Watch> watches_;
  std::map<int, Client> clients_;
  std::map<std::string, Channel> channels_;
  // Keepers (and their daemons) of removed channels still serving a lazily detached
  // mount, by pidfd.
  struct Lingering {
    pid_t pid;
    UniqueFd pidfd;
  };
  std::map<int, Lingering> lingering_;
  bool stopping_ = false;
};

void Controller::watch(int fd, Source source, std::string host_path, std::uint32_t events) {
  epoll_event ev{};
  ev.events = events;
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
    ch.run_dir = run_dir_.path();
    if (ch.keeper_pidfd) watch(ch.keeper_pidfd.get(), Source::kKeeper, host);
    if (ch.owner_pidfd) watch(ch.owner_pidfd.get(), Source::kOwner, host);
    bool owner_gone = ch.owner_pid && !ch.owner_pidfd;
    // A member whose bundle went while no controller watched has left.
    std::vector<std::string> left;
    for (const ChannelMember& m : ch.members) {
      if (m.who.bundle.empty()) continue;
      if (!bundles_.add(m.who.bundle, {host, m.who.id}, m.bundle_id)) left.push_back(m.who.id);
    }
    save(ch);
    channels_.emplace(host, std::move(ch));
    if (owner_gone) {
      on_owner_exit(host);
      continue;
    }
    for (const std::string& member : left) {
      log_->info("channel {}: the bundle of {} is gone: it has left", host, member);
      drop_member(host, member);
    }
  }
}

void Controller::accept_clients() {
  for (;;) {
    UniqueFd fd(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd) return;  // EAGAIN: all accepted
    ucred peer = peer_of(fd.get());
    if (clients_.size() >= kMaxClients) {
      log_->warn("turned away a client (pid {}): {} clients are connected", peer.pid, kMaxClients);
      continue;
    }
    int raw = fd.get();
    clients_.emplace(raw, Client{Connection(std::move(fd)), peer});
    watch(raw, Source::kConnection);
  }
}

void Controller::drop(int fd) {
  unwatch(fd);
  clients_.erase(fd);
}

// Never blocks: requests are answered into the client's queue, which is written as the
// socket takes it (connection.hpp).
void Controller::on_client(int fd, std::uint32_t events) {
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  Client& client = it->second;
  Connection& conn = client.conn;
  if ((events & EPOLLERR) || ((events & EPOLLOUT) && !conn.flush())) return drop(fd);
  if ((events & (EPOLLIN | EPOLLHUP)) && !conn.closing()) serve_requests(client);
  if (!clients_.contains(fd)) return;
  if (!conn.flush() || (conn.closing() && !conn.has_output())) return drop(fd);
  epoll_event ev{};
  ev.events = (conn.closing() ? 0u : std::uint32_t{EPOLLIN}) | (conn.has_output() ? EPOLLOUT : 0u);
  ev.data.fd = fd;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev);
}

void Controller::serve_requests(Client& client) {
  Connection& conn = client.conn;
  std::vector<std::string> lines;
  auto input = conn.read_lines(lines);
  for (const std::string& line : lines) {
    if (!conn.queue(answer_line(line, client.peer))) {
      log_->warn("dropped a client (pid {}) that does not read its answers", client.peer.pid);
      return drop(conn.fd());
    }
    if (client.peer.uid != 0) return conn.close_after_output();
  }
  switch (input) {
    case Connection::Input::kOpen: break;
    case Connection::Input::kClosed: conn.close_after_output(); break;
    case Connection::Input::kError: return drop(conn.fd());
    case Connection::Input::kTooLong:
      log_->warn("closed a client (pid {}) that sent a request line over {} bytes",
                 client.peer.pid, Connection::kMaxLine);
      (void)conn.queue(encode_line(encode_error(Error::bad_input(fmt::format(
          "bad request: a line over {} bytes: the connection is closed", Connection::kMaxLine)))));
      conn.close_after_output();
      break;
  }
}

// One line of valid JSON, whatever the request held and whatever went wrong.
std::string Controller::answer_line(const std::string& line, const ucred& peer) {
  json reply;
  try {
    reply = answer(line, peer);
  } catch (const std::exception& ex) {
    log_->error("request from pid {} failed: {}", peer.pid, ex.what());
    reply = encode_error(Error::failure(
        fmt::format("the controller could not answer (see {})", log_path(run_dir_.path()))));
  }
  return encode_line(reply);
}

json Controller::answer(const std::string& line, const ucred& peer) {
  if (auto allowed = authorize_peer(peer, run_dir_.path()); !allowed) return encode_error(allowed.error());
  auto request = parse_request(line);
  if (!request) return encode_error(request.error());
  return std::visit([this](const auto& r) { return handle(r); }, request.value());
}

json Controller::handle(const PingRequest&) { return encode_answer(::getpid()); }

json Controller::handle(const MetricsRequest&) { return encode_answer(metrics_text(board_->Collect())); }

Expected<void> Controller::serve_metrics(const std::string& address) {
  HC_TRY(server, MetricsServer::start(address, board_));
  metrics_server_ = std::move(server);
  log_->info("metrics at http://{}/metrics", address);
  return success();
}

// The channel's record, and what the metrics sample of it, after every change.
void Controller::save(const Channel& ch) {
  registry_.save(ch);
  ChannelSource source;
  source.host_path = ch.spec.host_path;
  source.owner_id = ch.owner_id;
  source.quota_bytes = ch.spec.size_bytes;
  source.max_inodes = ch.max_inodes;
  source.state = state_name(ch.state);
  if (ch.meta_fd) source.meta.reset(::fcntl(ch.meta_fd.get(), F_DUPFD_CLOEXEC, 0));
  if (ch.session_fd) source.session.reset(::fcntl(ch.session_fd.get(), F_DUPFD_CLOEXEC, 0));
  if (ch.metrics_fd) {
    if (auto counters = fs::RequestMetrics::attach(ch.metrics_fd.get())) source.requests.emplace(std::move(counters).value());
  }
  board_->put(std::move(source));
}

// Where a channel may not be: inside another channel, ours or another controller's (its
// files are its users', and a symlink planted there could lead anywhere; walking it would
// also wait on its daemon), or among the controller's own files.
Expected<void> Controller::check_place(const std::string& host) const {
  std::vector<std::string> channels = channel_mount_points();
  for (const auto& [other, ch] : channels_) channels.push_back(other);
  for (const std::string& other : channels) {
    if (other == host) {  // another controller's: looking at it could wait on its daemon
      return Error::bad_input(fmt::format(
          "host path \"{}\" already exists (a channel): give a path that does not exist yet, "
          "the channel makes it and removes it", host));
    }
    if (path_is_within(host, other)) {
      return Error::bad_input(fmt::format(
          "host path \"{}\" is inside channel {}: give a path outside every channel", host, other));
    }
  }
  const std::string& run = run_dir_.path();
  if (path_is_within(host, run) && !path_is_within(host, run_dir_.file_path(kChannelsInRunDir))) {
    return Error::bad_input(fmt::format(
        "host path \"{}\" is in the controller's run dir {} (only {}/ may hold channels): give "
        "a path elsewhere", host, run, run_dir_.file_path(kChannelsInRunDir)));
  }
  return success();
}

json Controller::handle(const CreateRequest& request) {
  // The controller does not trust the client's parsing: the spec is checked again here.
  auto spec = parse_spec(request.spec.to_string());
  if (!spec) return encode_error(spec.error());
  const Owner& owner = request.owner;
  const std::string& host = spec.value().host_path;
  if (auto it = channels_.find(host); it != channels_.end()) {
    Channel& existing = it->second;
    if (existing.owner_id == owner.id && existing.spec == spec.value()) {
      if (request.member) {
        if (auto joined = join(existing, *request.member); !joined) return encode_error(joined.error());
      }
      return encode_answer(CreateResult{existing.info(), true});
    }
    if (existing.owner_id == owner.id && request.member) {
      return encode_error(Error::bad_input(fmt::format(
          "{} asks for the channel at \"{}\" as {}, but {} has it as {}: give every container "
          "of one pod the same channel spec",
          request.member->id, host, spec.value().to_string(), owner.id, existing.spec.to_string())));
    }
    return encode_error(Error::bad_input(fmt::format(
        "host path \"{}\" is already a channel (owner {}): give another host path, or "
        "remove it with `hostchanfs umount {}`",
        host, it->second.owner_id, host)));
  }
  if (auto placed = check_place(host); !placed) return encode_error(placed.error());
  UniqueFd owner_pidfd;
  if (owner.pid) {
    auto pidfd = open_pidfd(*owner.pid);
    if (!pidfd) {
      return encode_error(Error::bad_input(fmt::format("owner pid {} is not running", *owner.pid)));
    }
    owner_pidfd = std::move(pidfd).value();
  }
  auto started = start_channel(spec.value(), request.options, owner, run_dir_.path());
  if (!started) return encode_error(started.error());
  Channel ch = std::move(started).value();
  ch.owner_pidfd = std::move(owner_pidfd);
  if (request.member) {
    if (auto joined = join(ch, *request.member); !joined) {
      if (auto unmounted = unmount_channel(ch)) (void)release_channel(ch, unmounted.value());
      return encode_error(joined.error());
    }
  }
  watch(ch.keeper_pidfd.get(), Source::kKeeper, host);
  if (ch.owner_pidfd) watch(ch.owner_pidfd.get(), Source::kOwner, host);
  ChannelInfo info = ch.info();
  // The daemon's own default, remembered so that `ls` still shows it if the daemon dies.
  if (ch.max_inodes == 0) ch.max_inodes = info.max_inodes;
  save(ch);
  channels_.emplace(host, std::move(ch));
  return encode_answer(CreateResult{info, false});
}

json Controller::handle(const ExposeRequest& request) {
  auto it = channels_.find(request.host_path);
  if (it == channels_.end()) {
    return encode_error(Error::not_found(fmt::format("no channel at {}", request.host_path)));
  }
  const Channel& ch = it->second;
  auto mount = open_channel_mount(ch.spec.host_path, ch.mount);
  if (!mount) return encode_error(mount.error());
  auto done = expose_into(mount.value().get(), request.host_path, request.pid, request.rootfs,
                          ch.spec.container_path, ch.spec.read_only);
  if (!done) return encode_error(done.error());
  return encode_answer(std::monostate{});
}

// A channel whose mount cannot be taken away stays, as it was (and is reported).
Expected<void> Controller::remove_channel(const std::string& host) {
  auto it = channels_.find(host);
  if (it == channels_.end()) return Error::not_found(fmt::format("no channel at {}", host));
  Channel& ch = it->second;
  HC_TRY(how, unmount_channel(ch));
  unwatch(ch.keeper_pidfd.get());
  unwatch(ch.owner_pidfd.get());
  for (const ChannelMember& m : ch.members) bundles_.remove({host, m.who.id});
  auto released = release_channel(ch, how);
  if (ch.keeper_pidfd) {
    int fd = ch.keeper_pidfd.get();
    lingering_[fd] = Lingering{ch.keeper_pid, std::move(ch.keeper_pidfd)};
    watch(fd, Source::kLingering);
  }
  registry_.forget(host);
  board_->erase(host);
  channels_.erase(it);
  return released;
}

json Controller::handle(const RemoveRequest& request) {
  auto removed = remove_channel(request.host_path);
  if (!removed) return encode_error(removed.error());
  return encode_answer(std::monostate{});
}

// Adds the member (again: idempotent), watching its bundle when it has one. True when it
// is new.
Expected<bool> Controller::join(Channel& ch, const Member& member) {
  for (const ChannelMember& m : ch.members) {
    if (m.who.id == member.id) return false;
  }
  ChannelMember joined{member, {}};
  if (!member.bundle.empty()) {
    auto watched = bundles_.add(member.bundle, {ch.spec.host_path, member.id});
    if (!watched) {
      return Error::bad_input(fmt::format("{}: its bundle {} cannot be watched ({}): give the "
                                          "container's bundle directory",
                                          member.id, member.bundle, watched.error().message));
    }
    joined.bundle_id = watched.value();
  }
  ch.members.push_back(std::move(joined));
  save(ch);
  log_->info("channel {}: {} joined ({} member(s))", ch.spec.host_path, member.id, ch.members.size());
  return true;
}

// The member goes; with it the channel, when it was the last one (or the channel had none:
// one made by `run` for its container).
LeaveOutcome Controller::drop_member(const std::string& host, const std::string& member_id) {
  auto it = channels_.find(host);
  if (it == channels_.end()) return LeaveOutcome::kNoChannel;
  Channel& ch = it->second;
  std::erase_if(ch.members, [&](const ChannelMember& m) { return m.who.id == member_id; });
  bundles_.remove({host, member_id});
  if (!ch.members.empty()) {
    save(ch);
    log_->info("channel {}: {} left ({} member(s) stay)", host, member_id, ch.members.size());
    return LeaveOutcome::kLeft;
  }
  if (auto removed = remove_channel(host); !removed) {
    log_->error("channel {}: {}", host, removed.error().message);
  }
  return LeaveOutcome::kRemoved;
}

json Controller::handle(const LeaveRequest& request) {
  auto it = channels_.find(request.host_path);
  if (it == channels_.end()) return encode_answer(LeaveOutcome::kNoChannel);
  const Channel& ch = it->second;
  if (ch.owner_id != request.owner_id) return encode_answer(LeaveOutcome::kNotOurs);
  for (const ChannelMember& m : ch.members) {
    // Its engine stops it without deleting it: it leaves when its bundle goes.
    if (m.who.id == request.member_id && !m.who.bundle.empty()) {
      log_->debug("channel {}: {} stopped; it stays until its bundle {} goes", request.host_path,
                  request.member_id, m.who.bundle);
      return encode_answer(LeaveOutcome::kKept);
    }
  }
  return encode_answer(drop_member(request.host_path, request.member_id));
}

void Controller::on_bundles_gone() {
  for (const auto& [host, member] : bundles_.gone()) {
    log_->info("channel {}: the bundle of {} is gone (the container was deleted): it has left",
               host, member);
    drop_member(host, member);
  }
}

json Controller::handle(const ListRequest&) {
  std::vector<ChannelInfo> list;
  for (const auto& [host, ch] : channels_) list.push_back(ch.info());
  return encode_answer(list);
}

// The keeper restarts a dead daemon itself; this is the keeper's own end. One that ended
// by itself (its daemon saw the connection end, or refused the store) leaves the channel
// failed. One that was killed (or that an earlier controller started, whose end we cannot
// read) is replaced on the descriptors we hold, and its new daemon resumes the connection.
void Controller::on_keeper_exit(const std::string& host) {
  auto it = channels_.find(host);
  if (it == channels_.end()) return;
  Channel& ch = it->second;
  int status = 0;
  bool by_itself = false;
  std::string how = "ended";
  if (::waitpid(ch.keeper_pid, &status, WNOHANG) == ch.keeper_pid) {
    by_itself = WIFEXITED(status);
    how = WIFSIGNALED(status) ? fmt::format("was killed by signal {}", WTERMSIG(status))
                              : fmt::format("exited with status {}", WEXITSTATUS(status));
  }
  unwatch(ch.keeper_pidfd.get());
  ch.keeper_pidfd.reset();
  pid_t old = ch.keeper_pid;
  if (!by_itself) {
    if (auto restarted = restart_keeper(ch); restarted) {
      log_->warn("channel {}: keeper pid {} {}: keeper pid {} takes the channel over", host, old,
                 how, ch.keeper_pid);
      watch(ch.keeper_pidfd.get(), Source::kKeeper, host);
      registry_.save(ch);
      return;
    } else {
      log_->error("channel {}: keeper pid {} {}: cannot replace it: {}", host, old, how,
                  restarted.error().message);
    }
  }
  log_->error("channel {}: keeper pid {} {}: channel marked failed (umount removes it)", host, old, how);
  ch.state = ChannelState::kFailed;
  save(ch);
}

void Controller::on_owner_exit(const std::string& host) {
  log_->info("channel {}: its owner exited: removing it", host);
  if (auto it = channels_.find(host); it != channels_.end()) {
    unwatch(it->second.owner_pidfd.get());  // a dead owner's pidfd stays readable
    it->second.owner_pidfd.reset();
  }
  if (auto removed = remove_channel(host); !removed) {
    log_->error("channel {}: {}", host, removed.error().message);
  }
}

void Controller::teardown() {
  std::vector<std::string> hosts;
  for (const auto& [host, ch] : channels_) hosts.push_back(host);
  for (const std::string& host : hosts) {
    if (auto removed = remove_channel(host); !removed) {
      log_->error("channel {}: {}", host, removed.error().message);
    }
  }
  for (auto& [fd, l] : lingering_) stop_lingering(l.pid, fd, true);
  lingering_.clear();
  ::unlinkat(run_dir_.fd(), kSocketName, 0);
  ::unlinkat(run_dir_.fd(), kPidName, 0);
}

int Controller::run(const ControllerOptions& options) {
  sigset_t mask = stop_signals();
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);
  signal_.reset(::signalfd(-1, &mask, SFD_CLOEXEC));
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!signal_ || !epoll_) {
    log_->error("cannot set up the event loop: {}", errno_text(last_errc()));
    return kExitFailure;
  }
  // After the signals are blocked: the server's threads inherit the mask.
  if (!options.metrics_listen.empty()) {
    if (auto served = serve_metrics(options.metrics_listen); !served) {
      teardown();
      return report(served.error(), "hostchanfs controller");
    }
  }
  watch(listen_.get(), Source::kListen);
  watch(signal_.get(), Source::kSignal);
  watch(bundles_.fd(), Source::kBundles);
  load_registry();
  log_->info("controller of {} ready (pid {})", run_dir_.path(), ::getpid());

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
        case Source::kListen: accept_clients(); break;
        case Source::kConnection: on_client(fd, events[i].events); break;
        case Source::kKeeper: on_keeper_exit(w.host_path); break;
        case Source::kOwner: on_owner_exit(w.host_path); break;
        case Source::kBundles: on_bundles_gone(); break;
        case Source::kLingering: {
          auto l = lingering_.find(fd);
          if (l != lingering_.end()) {
            log_->info("keeper pid {} of a detached channel exited", l->second.pid);
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

// The run dir checked and taken, the socket listening, the registry open.
Expected<Controller> open_controller(const std::string& path) {
  if (::geteuid() != 0) {
    return Error::refused("the controller must run as root (it mounts channels and makes "
                          "their host paths): run it as root");
  }
  HC_TRY(run_dir, RunDir::open(path, true));
  HC_TRY(lock, run_dir.claim());
  HC_TRY(registry, Registry::open(run_dir));
  HC_TRY(bundles, BundleWatch::open());
  // We hold the lock, so a socket file left here is stale.
  ::unlinkat(run_dir.fd(), kSocketName, 0);
  auto listening = listen_unix(run_dir.socket_address(kSocketName), 0600, 64);
  if (!listening) {
    return Error::failure(fmt::format("cannot listen on {}: {}", run_dir.file_path(kSocketName),
                                      errno_text(listening.error())));
  }
  return Controller(std::move(run_dir), std::move(lock), std::move(listening).value(),
                    std::move(registry), std::move(bundles));
}

}  // namespace

int run_controller(const std::string& run_dir, const ControllerOptions& options) {
  ::umask(022);  // the host paths it makes are 0755 whoever started it
  // A channel holds a dozen descriptors here (the connection and its clones, the memory,
  // pidfds): the soft limit of 1024 would stop at about 80 channels. The controller never
  // uses select(2), so it takes the hard limit.
  if (rlimit nofile{}; ::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &nofile) < 0)
      log::get("controller")->warn("cannot raise the descriptor limit: {}", errno_text(last_errc()));
  }
  auto controller = open_controller(run_dir);
  if (!controller) {
    if (controller.error().kind == Error::Kind::kAlreadyRunning) {
      log::get("controller")->info("{}", controller.error().message);
      return kExitOk;  // the run dir is served: nothing to do
    }
    return report(controller.error(), "hostchanfs controller");
  }
  return controller.value().run(options);
}

}  // namespace hostchanfs::mountctl
