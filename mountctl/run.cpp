#include "mountctl/run.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "mountctl/client.hpp"
#include "sys/child.hpp"
#include "sys/errno_text.hpp"
#include "sys/log.hpp"

namespace hostchanfs::mountctl {

namespace {

// The signals `run` passes on to CMD. SIGCHLD tells us the container ended.
const int kForwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT};

// The capabilities a container root keeps (Docker's default set): without CAP_SYS_ADMIN
// it cannot remount a read-only channel writable or undo any other mount.
const int kKeptCaps[] = {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FSETID, CAP_FOWNER, CAP_MKNOD,
                         CAP_NET_RAW, CAP_SETGID, CAP_SETUID, CAP_SETFCAP, CAP_SETPCAP,
                         CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT, CAP_KILL, CAP_AUDIT_WRITE};

// Devices bound into a --rootfs container's fresh /dev.
const char* const kDevices[] = {"null", "zero", "full", "random", "urandom", "tty"};

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

// ---- inside the container (the cloned child, pid 1 of its pid namespace) ---------------
// These run between clone and exec: they report one line on stderr and _exit on failure.

[[noreturn]] void die(const std::string& what, int err) {
  ::_exit(print_error("hostchanfs run", what + ": " + errno_text(err), kExitFailure));
}

void check(bool ok, const std::string& what) {
  if (!ok) die(what, errno);
}

// One entry of the host's / in the container root: directories as read-only recursive
// clones, symlinks copied, files bound read-only.
void add_host_entry(const std::string& name, const std::string& new_root) {
  std::string source = "/" + name, target = new_root + "/" + name;
  struct stat st {};
  if (::lstat(source.c_str(), &st) < 0) return;
  if (S_ISLNK(st.st_mode)) {
    char link[PATH_MAX];
    ssize_t n = ::readlink(source.c_str(), link, sizeof link - 1);
    if (n < 0) return;
    link[n] = '\0';
    check(::symlink(link, target.c_str()) == 0, "copy the symlink " + source);
    return;
  }
  if (S_ISDIR(st.st_mode)) {
    check(::mkdir(target.c_str(), st.st_mode & 07777) == 0, "mkdir " + target);
  } else if (S_ISREG(st.st_mode)) {
    int fd = ::open(target.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    check(fd >= 0, "create " + target);
    ::close(fd);
  } else {
    return;
  }
  int tree = ::open_tree(AT_FDCWD, source.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  check(tree >= 0, "clone the host's " + source);
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID;  // not nodev: /dev/null, /dev/zero
  attr.propagation = MS_PRIVATE;
  check(::mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) == 0,
        "make the clone of " + source + " read-only");
  check(::move_mount(tree, "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) == 0,
        "attach the clone of " + source);
  ::close(tree);
}

// The root the container will pivot into, prepared at `new_root` (a directory on the
// scratch tmpfs). Without --rootfs: a tmpfs holding read-only clones of every entry of
// the host's /, so that a container path missing on the host (the seed's /testdir) can be
// made in the tmpfs, never on the host; the tmpfs turns read-only once the channels are
// in (seal_root). With --rootfs: that directory, bound.
void make_root(const RunRequest& args, const std::string& new_root) {
  if (args.rootfs.empty()) {
    check(::mount("hostroot", new_root.c_str(), "tmpfs", MS_NOSUID, "mode=0755,size=1m") == 0,
          "mount the container's root tmpfs");
    // Unbindable: the clones of the host's entries below must not copy it into itself.
    check(::mount(nullptr, new_root.c_str(), nullptr, MS_UNBINDABLE, nullptr) == 0,
          "make the container's root unbindable");
    std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir("/"), ::closedir);
    check(dir != nullptr, "read /");
    while (dirent* e = ::readdir(dir.get())) {
      std::string name = e->d_name;
      if (name != "." && name != "..") add_host_entry(name, new_root);
    }
    return;
  }
  check(::mount(args.rootfs.c_str(), new_root.c_str(), nullptr, MS_BIND | MS_REC, nullptr) == 0,
        "bind the rootfs " + args.rootfs);
  check(::mount(nullptr, new_root.c_str(), nullptr, MS_REC | MS_PRIVATE, nullptr) == 0,
        "make the rootfs private");
  // A rootfs tree rarely has device nodes: a small /dev with the host's basic devices.
  std::string dev = new_root + "/dev";
  ::mkdir(dev.c_str(), 0755);
  check(::mount("tmpfs", dev.c_str(), "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k") == 0,
        "mount /dev in the rootfs");
  for (const char* name : kDevices) {
    std::string target = dev + "/" + name;
    std::string source = std::string("/dev/") + name;
    int fd = ::open(target.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
    if (fd >= 0) ::close(fd);
    if (::mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) < 0) ::unlink(target.c_str());
  }
  for (auto [name, target] : {std::pair{"fd", "/proc/self/fd"}, std::pair{"stdin", "/proc/self/fd/0"},
                              std::pair{"stdout", "/proc/self/fd/1"}, std::pair{"stderr", "/proc/self/fd/2"}}) {
    [[maybe_unused]] int rc = ::symlinkat(target, AT_FDCWD, (dev + "/" + name).c_str());
  }
  std::string shm = dev + "/shm";
  ::mkdir(shm.c_str(), 01777);
  ::mount("shm", shm.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=64m");
}

// The host-root tmpfs goes read-only once the channels' mount points are made in it.
void seal_root(const RunRequest& args, const std::string& new_root) {
  if (!args.rootfs.empty()) return;
  check(::mount(nullptr, new_root.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, nullptr) == 0,
        "make the container root read-only");
}

void enter_root(const std::string& new_root) {
  check(::chdir(new_root.c_str()) == 0, "enter the new root");
  // pivot_root(".", "."): the old root ends up on top of the new one and is detached.
  check(::syscall(SYS_pivot_root, ".", ".") == 0, "pivot_root");
  check(::umount2(".", MNT_DETACH) == 0, "detach the old root");
  check(::chdir("/") == 0, "chdir /");
  // A /proc of our own pid namespace, instead of the host's.
  ::umount2("/proc", MNT_DETACH);
  ::mkdir("/proc", 0555);
  check(::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) == 0, "mount /proc");
}

void drop_privileges(const std::optional<Identity>& user) {
  int last = CAP_LAST_CAP;
  std::ifstream("/proc/sys/kernel/cap_last_cap") >> last;
  for (int cap = 0; cap <= last; ++cap) {
    bool kept = false;
    for (int k : kKeptCaps) kept = kept || k == cap;
    if (!kept) check(::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0 || errno == EINVAL, "drop capabilities");
  }
  if (!user) return;
  check(::setgroups(0, nullptr) == 0, "setgroups");
  check(::setgid(user->gid) == 0, fmt::format("setgid {}", user->gid));
  check(::setuid(user->uid) == 0, fmt::format("setuid {}", user->uid));
}

// pid 1 of the container: start CMD, pass signals on to it, reap orphans, and end with
// CMD's status (the kernel then kills whatever CMD left behind).
[[noreturn]] void container_init(const RunRequest& args, const sigset_t& forwarded) {
  pid_t cmd = ::fork();
  check(cmd >= 0, "fork");
  if (cmd == 0) {
    unblock_all_signals();
    std::vector<char*> argv;
    for (const auto& a : args.command) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    int err = errno;
    ::_exit(print_error("hostchanfs run", fmt::format("cannot run {}: {}", argv[0], errno_text(err)),
                        err == ENOENT ? 127 : 126));
  }
  for (;;) {
    siginfo_t info{};
    int sig = ::sigwaitinfo(&forwarded, &info);
    if (sig < 0) continue;
    if (sig != SIGCHLD) {
      ::kill(cmd, sig);
      continue;
    }
    int status = 0;
    pid_t done;
    while ((done = ::waitpid(-1, &status, WNOHANG)) > 0) {
      if (done == cmd) ::_exit(exit_status_of(status));
    }
  }
}

[[noreturn]] void container_main(const RunRequest& args, const std::optional<Identity>& user,
                                 const std::string& scratch, int sync_fd,
                                 const sigset_t& forwarded) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  check(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0, "make / private");
  // A scratch tmpfs over the run dir (in our namespace only): it holds the new root's
  // mount point, and it hides the controller's socket from the container.
  check(::mount("tmpfs", scratch.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700,size=16k") == 0,
        "mount a scratch tmpfs on " + scratch);
  std::string new_root = scratch + "/root";
  check(::mkdir(new_root.c_str(), 0755) == 0, "mkdir " + new_root);
  make_root(args, new_root);

  // Tell the parent where the root is; it binds the channels in, then says go.
  check(::send(sync_fd, new_root.data(), new_root.size(), MSG_NOSIGNAL) >= 0, "talk to hostchanfs run");
  char go = 0;
  if (::recv(sync_fd, &go, 1, 0) != 1 || go != 'g') ::_exit(1);  // the parent gave up
  ::close(sync_fd);

  seal_root(args, new_root);
  enter_root(new_root);
  ::sethostname("hostchanfs", 10);
  drop_privileges(user);
  container_init(args, forwarded);
}

// ---- in the caller --------------------------------------------------------------------

int report_run(const Error& e) { return mountctl::report(e, "hostchanfs run"); }

class RunSession {
 public:
  RunSession(ControllerClient client) : client_(std::move(client)) {}
  RunSession(const RunSession&) = delete;
  RunSession& operator=(const RunSession&) = delete;
  // Whatever happens, the channels go with us.
  ~RunSession() {
    for (const auto& host : created_) {
      if (auto removed = client_.remove(host); !removed && removed.error().kind != Error::Kind::kNotFound) {
        report_run(removed.error());
      }
    }
  }
  Expected<void> create(const ChannelSpec& spec) {
    Owner owner{fmt::format("run:{}", ::getpid()), ::getpid()};
    HC_TRY(result, client_.create(spec, ChannelOptions{}, owner));
    (void)result;
    created_.push_back(spec.host_path);
    return success();
  }
  ControllerClient& client() { return client_; }

 private:
  ControllerClient client_;
  std::vector<std::string> created_;
};

}  // namespace

int run_main(const RunRequest& args) {
  const std::string& run_dir = args.run_dir;
  // Everything the user gave is checked before anything is made.
  std::vector<ChannelSpec> specs;
  for (const auto& text : args.specs) {
    auto spec = parse_spec(text);
    if (!spec) return report_run(spec.error());
    specs.push_back(std::move(spec).value());
  }
  RunRequest resolved = args;
  if (!args.rootfs.empty()) {
    char real[PATH_MAX];
    struct stat st {};
    if (!::realpath(args.rootfs.c_str(), real) || ::stat(real, &st) < 0 || !S_ISDIR(st.st_mode)) {
      return report_run(Error::bad_input(fmt::format("--rootfs \"{}\" is not a directory", args.rootfs)));
    }
    resolved.rootfs = real;
  }
  std::optional<Identity> user;
  if (!args.user.empty()) {
    auto parsed = parse_user(args.user);
    if (!parsed) return report_run(parsed.error());
    user = parsed.value();
  }

  auto client = ControllerClient::connect(run_dir);
  if (!client) return report_run(client.error());
  RunSession session(std::move(client).value());
  for (const auto& spec : specs) {
    if (auto created = session.create(spec); !created) return report_run(created.error());
  }

  // Signals are taken synchronously from here on, in us and (inherited) in the container.
  sigset_t forwarded, old_mask;
  sigemptyset(&forwarded);
  for (int sig : kForwarded) sigaddset(&forwarded, sig);
  sigaddset(&forwarded, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &forwarded, &old_mask);

  int sync[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sync) < 0) {
    return report_run(Error::failure(fmt::format("cannot make a socketpair: {}", errno_text(last_errc()))));
  }
  std::string scratch = run_dir;
  long child = ::syscall(SYS_clone, CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD,
                         nullptr, nullptr, nullptr, 0);
  if (child < 0) {
    return report_run(Error::failure(fmt::format("cannot make the container's namespaces: {}", errno_text(last_errc()))));
  }
  if (child == 0) {
    ::close(sync[0]);
    container_main(resolved, user, scratch, sync[1], forwarded);
  }
  ::close(sync[1]);
  pid_t pid = static_cast<pid_t>(child);
  auto kill_container = [pid] {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  };

  char root[PATH_MAX];
  ssize_t n = ::recv(sync[0], root, sizeof root, 0);
  if (n <= 0) {
    // The child said why on stderr.
    ::waitpid(pid, nullptr, 0);
    ::close(sync[0]);
    return 1;
  }
  std::string new_root(root, static_cast<std::size_t>(n));
  for (const auto& spec : specs) {
    if (auto exposed = session.client().expose(spec.host_path, pid, new_root); !exposed) {
      kill_container();
      ::close(sync[0]);
      return report_run(exposed.error());
    }
  }
  char go = 'g';
  [[maybe_unused]] ssize_t sent = ::send(sync[0], &go, 1, MSG_NOSIGNAL);
  ::close(sync[0]);

  for (;;) {
    siginfo_t info{};
    int sig = ::sigwaitinfo(&forwarded, &info);
    if (sig < 0) continue;
    if (sig == SIGCHLD) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
        return exit_status_of(status);
      }
      continue;
    }
    // A terminal's ^C or ^\ already reached CMD (same process group): do not double it.
    if ((sig == SIGINT || sig == SIGQUIT) && info.si_code == SI_KERNEL) continue;
    ::kill(pid, sig);
  }
}

}  // namespace hostchanfs::mountctl
