#include "mountctl/controller.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include "mountctl/pidfd.hpp"
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <system_error>

#include <fmt/format.h>

#include "mountctl/channel.hpp"
#include "mountctl/protocol.hpp"
#include "mountctl/run_dir.hpp"
#include "sys/log.hpp"
#include "sys/read_file.hpp"

namespace hostchanfs::mountctl {

namespace {

std::string errno_text(std::errc e) { return std::make_error_code(e).message(); }

// A registry file name for a host path: '/' and '%' escaped, so it is one name.
std::string registry_name(const std::string& host_path) {
  std::string out;
  for (char c : host_path) {
    if (c == '/') out += "%2F";
    else if (c == '%') out += "%25";
    else out += c;
  }
  return out + ".json";
}

class Controller {
 public:
  explicit Controller(std::string run_dir) : run_dir_(std::move(run_dir)), log_(log::get("controller")) {}
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
  json handle(const json& request, const ucred& peer);
  json handle_create(const json& request);
  json handle_expose(const json& request);
  json handle_remove(const std::string& host_path);
  json handle_list();
  void on_daemon_exit(const std::string& host_path);
  void on_owner_exit(const std::string& host_path);
  Expected<void> remove_channel(const std::string& host_path);
  void save(const Channel& ch);
  void forget(const std::string& host_path);
  void load_registry();
  void teardown();

  std::string run_dir_;
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

bool same_mount_namespace(pid_t pid);

Expected<void> Controller::open_run_dir() {
  HC_TRYV(make_run_dir(run_dir_));
  if (::mkdir(registry_dir(run_dir_).c_str(), 0700) < 0 && errno != EEXIST) {
    return Error::failure(fmt::format("cannot make {}: {}", registry_dir(run_dir_), errno_text(last_errc())));
  }
  lock_.reset(::open(lock_path(run_dir_).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock_) return Error::failure(fmt::format("cannot open {}: {}", lock_path(run_dir_), errno_text(last_errc())));
  if (::flock(lock_.get(), LOCK_EX | LOCK_NB) < 0) {
    if (errno == EWOULDBLOCK) return Error::not_found("another controller owns " + run_dir_);
    return Error::failure(fmt::format("cannot lock {}: {}", lock_path(run_dir_), errno_text(last_errc())));
  }
  {
    std::ofstream pid(pid_path(run_dir_), std::ios::trunc);
    pid << ::getpid() << "\n";
  }
  // We hold the lock, so a socket file left here is stale.
  std::string sock_path = socket_path(run_dir_);
  ::unlink(sock_path.c_str());
  listen_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (sock_path.size() >= sizeof addr.sun_path) {
    return Error::bad_input(fmt::format("run dir {} is too long for a socket path", run_dir_));
  }
  std::memcpy(addr.sun_path, sock_path.c_str(), sock_path.size() + 1);
  if (!listen_ || ::bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 ||
      ::chmod(sock_path.c_str(), 0600) < 0 || ::listen(listen_.get(), 64) < 0) {
    return Error::failure(fmt::format("cannot listen on {}: {}", sock_path, errno_text(last_errc())));
  }
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

void Controller::save(const Channel& ch) {
  std::string dir = registry_dir(run_dir_);
  std::string final_path = dir + "/" + registry_name(ch.spec.host_path);
  std::string tmp = final_path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << ch.record().dump(2) << "\n";
    if (!out) {
      log_->error("cannot write {}", tmp);
      return;
    }
  }
  // rename: a reader (or a restarted controller) sees the old entry or the new one.
  if (::rename(tmp.c_str(), final_path.c_str()) < 0) {
    log_->error("cannot write {}: {}", final_path, errno_text(last_errc()));
  }
}

void Controller::forget(const std::string& host_path) {
  std::string path = registry_dir(run_dir_) + "/" + registry_name(host_path);
  ::unlink(path.c_str());
}

// Channels a previous controller left: a daemon still alive is watched again (and its
// descriptors taken back with pidfd_getfd); otherwise the channel is failed, and
// `umount` cleans it up.
void Controller::load_registry() {
  std::string dir = registry_dir(run_dir_);
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (!d) return;
  while (dirent* e = ::readdir(d.get())) {
    std::string name = e->d_name;
    if (name.size() < 5 || name.substr(name.size() - 5) != ".json") continue;
    try {
      std::ifstream in(dir + "/" + name);
      json record = json::parse(in);
      Channel ch = Channel::from_record(record);
      ch.state = ChannelState::kFailed;
      if (ch.daemon_pid > 0) {
        UniqueFd pidfd(open_pidfd(ch.daemon_pid));
        std::string args = read_small_file(fmt::format("/proc/{}/cmdline", ch.daemon_pid));
        if (pidfd && args.find(std::string("serve") + '\0') != std::string::npos &&
            args.find(ch.spec.host_path) != std::string::npos) {
          auto fds = record.value("daemon_fds", json::object());
          auto take = [&](const char* key) {
            return UniqueFd(static_cast<int>(take_fd(pidfd.get(), fds.value(key, -1))));
          };
          ch.fuse_fd = take("fuse");
          ch.meta_fd = take("meta");
          ch.data_fd = take("data");
          ch.daemon_pidfd = std::move(pidfd);
          ch.state = ChannelState::kRunning;
        }
      }
      log_->info("registry: channel {} ({}), daemon pid {}", ch.spec.host_path,
                 ch.state == ChannelState::kRunning ? "adopted" : "failed", ch.daemon_pid);
      std::string host = ch.spec.host_path;
      if (ch.daemon_pidfd) watch(ch.daemon_pidfd.get(), Source::kDaemon, host);
      if (ch.owner_pid) {
        ch.owner_pidfd.reset(open_pidfd(*ch.owner_pid));
        if (ch.owner_pidfd) watch(ch.owner_pidfd.get(), Source::kOwner, host);
      }
      bool owner_gone = ch.owner_pid && !ch.owner_pidfd;
      save(ch);
      channels_.emplace(host, std::move(ch));
      if (owner_gone) on_owner_exit(host);
    } catch (const std::exception& ex) {
      log_->error("registry: ignoring {}: {}", name, ex.what());
    }
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
  ucred peer{};
  socklen_t len = sizeof peer;
  ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len);
  auto batch = read_available_lines(fd, conn.pending);
  bool close_it = !batch || batch.value().closed;
  if (batch) {
    for (const auto& line : batch.value().lines) {
      json answer;
      try {
        answer = handle(json::parse(line), peer);
      } catch (const json::exception& ex) {
        answer = error_answer(Error::bad_input(fmt::format("bad request: {}", ex.what())));
      }
      if (!send_line(fd, answer)) close_it = true;
      if (peer.uid != 0) close_it = true;
    }
  }
  if (close_it) {
    unwatch(fd);
    connections_.erase(it);
  }
}

// Root in our mount namespace only: a container's root (which may see the socket through
// a bind) must not create or remove host mounts, and a client elsewhere would not see the
// channels it asked for.
bool same_mount_namespace(pid_t pid) {
  struct stat ours {}, theirs {};
  return ::stat("/proc/self/ns/mnt", &ours) == 0 &&
         ::stat(fmt::format("/proc/{}/ns/mnt", pid).c_str(), &theirs) == 0 &&
         ours.st_ino == theirs.st_ino && ours.st_dev == theirs.st_dev;
}

json Controller::handle(const json& request, const ucred& peer) {
  if (peer.uid != 0) {
    log_->warn("refused a request from uid {} (pid {})", peer.uid, peer.pid);
    return error_answer(Error::bad_input("the hostchanfs controller answers root only"));
  }
  if (!same_mount_namespace(peer.pid)) {
    log_->warn("refused a request from pid {} in another mount namespace", peer.pid);
    return error_answer(Error::bad_input(fmt::format(
        "the hostchanfs controller of {} runs in another mount namespace: its channels are "
        "not visible from yours (use another --run-dir)", run_dir_)));
  }
  std::string op = request.at("op").get<std::string>();
  if (op == "ping") return json{{"ok", true}, {"pid", ::getpid()}};
  if (op == "create") return handle_create(request);
  if (op == "expose") return handle_expose(request);
  if (op == "remove") return handle_remove(request.at("host_path").get<std::string>());
  if (op == "list") return handle_list();
  return error_answer(Error::bad_input(fmt::format("unknown request \"{}\"", op)));
}

json Controller::handle_create(const json& request) {
  ChannelSpec asked = request.at("spec").get<ChannelSpec>();
  // The controller does not trust the client's parsing: the spec is checked again here.
  auto spec = parse_spec(asked.to_string());
  if (!spec) return error_answer(spec.error());
  ChannelOptions options;
  if (request.contains("uid") && !request["uid"].is_null()) options.uid = request["uid"].get<uid_t>();
  if (request.contains("gid") && !request["gid"].is_null()) options.gid = request["gid"].get<gid_t>();
  options.max_inodes = request.value("max_inodes", std::uint64_t{0});
  Owner owner;
  const json& o = request.at("owner");
  o.at("id").get_to(owner.id);
  if (o.contains("pid") && !o["pid"].is_null()) owner.pid = o["pid"].get<pid_t>();

  const std::string& host = spec.value().host_path;
  if (auto it = channels_.find(host); it != channels_.end()) {
    if (it->second.owner_id == owner.id && it->second.spec == spec.value()) {
      return json{{"ok", true}, {"existed", true}, {"channel", it->second.info()}};
    }
    return error_answer(Error::bad_input(fmt::format(
        "host path \"{}\" is already a channel (owner {}): give another host path, or "
        "remove it with `hostchanfs umount {}`",
        host, it->second.owner_id, host)));
  }
  UniqueFd owner_pidfd;
  if (owner.pid) {
    owner_pidfd.reset(open_pidfd(*owner.pid));
    if (!owner_pidfd) {
      return error_answer(Error::bad_input(fmt::format("owner pid {} is not running", *owner.pid)));
    }
  }
  auto started = start_channel(spec.value(), options, owner);
  if (!started) return error_answer(started.error());
  Channel ch = std::move(started).value();
  ch.owner_pidfd = std::move(owner_pidfd);
  watch(ch.daemon_pidfd.get(), Source::kDaemon, host);
  if (ch.owner_pidfd) watch(ch.owner_pidfd.get(), Source::kOwner, host);
  ChannelInfo info = ch.info();
  // The daemon's own default, remembered so that `ls` still shows it if the daemon dies.
  if (ch.max_inodes == 0) ch.max_inodes = info.max_inodes;
  save(ch);
  channels_.emplace(host, std::move(ch));
  return json{{"ok", true}, {"existed", false}, {"channel", info}};
}

json Controller::handle_expose(const json& request) {
  std::string host = request.at("host_path").get<std::string>();
  auto it = channels_.find(host);
  if (it == channels_.end()) {
    return error_answer(Error::not_found(fmt::format("no channel at {}", host)));
  }
  const Channel& ch = it->second;
  auto done = expose_into(host, request.at("pid").get<pid_t>(),
                          request.at("rootfs").get<std::string>(), ch.spec.container_path,
                          ch.spec.read_only);
  if (!done) return error_answer(done.error());
  return json{{"ok", true}};
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
  forget(host);
  channels_.erase(it);
  return stopped;
}

json Controller::handle_remove(const std::string& host_path) {
  auto removed = remove_channel(host_path);
  if (!removed) return error_answer(removed.error());
  return json{{"ok", true}};
}

json Controller::handle_list() {
  json list = json::array();
  for (const auto& [host, ch] : channels_) list.push_back(ch.info());
  return json{{"ok", true}, {"channels", list}};
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
  save(ch);
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
    if (opened.error().kind == Error::Kind::kNotFound) {
      log_->info("{}", opened.error().message);
      return 0;
    }
    log_->error("{}", opened.error().message);
    return 1;
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
    return 1;
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
  return 0;
}

}  // namespace

int run_controller(const std::string& run_dir) { return Controller(run_dir).run(); }

}  // namespace hostchanfs::mountctl
