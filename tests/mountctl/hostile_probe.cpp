// hostile_probe: run inside `hostchanfs run`'s container, it tries, for real, what a hostile
// container would, and prints one line per attempt: "blocked: WHAT: WHY" when the attempt
// failed, "ESCAPED: WHAT" when it worked (anything it made is undone at once, and it
// never writes to a device or a kernel setting it managed to open), "UNTESTED: WHAT" when
// what the test set up for it is not there (a test that cannot fail is a defect). Then
// "summary: B blocked, E escaped, U untested" and the counts of files it tried under
// /proc/sys and /sys. Exit status 0 only when nothing escaped and nothing was untested.
//
// Statically linked (no sanitizer): it must run in a busybox rootfs as in the host's root.
// Arguments, each KEY=VALUE and repeatable where it makes sense:
//   chan=/chan mode=rw|ro   the container's own channel and its mode
//   block=MAJ:MIN           a host block device: made (mknod) everywhere writable
//   planted=PATH            a device node the test put in the root: opening it must fail
//   hostdev=PATH            a host device path (/dev/vda): opening it must fail
//   abstract=NAME           a host abstract Unix socket: connecting must fail
//   socket=PATH             a host path Unix socket: connecting must fail
//   secret=PATH             a root-only host file: reading it must fail
//   other=PATH              a file of another channel, by its host path: reading must fail
#include <fcntl.h>
#include <ftw.h>
#include <linux/mount.h>
#include <net/if.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace {

int blocked = 0, escaped = 0, untested = 0;

void block(const std::string& what, int err) {
  ++blocked;
  std::printf("blocked: %s: %s\n", what.c_str(), std::strerror(err));
}
void escape(const std::string& what) {
  ++escaped;
  std::printf("ESCAPED: %s\n", what.c_str());
}
void untestable(const std::string& what) {
  ++untested;
  std::printf("UNTESTED: %s\n", what.c_str());
}
// An attempt whose success (rc >= 0) is an escape; `undo` runs if it succeeded.
void attempt(const std::string& what, long rc, const std::function<void()>& undo = {}) {
  if (rc < 0) return block(what, errno);
  escape(what);
  if (undo) undo();
}

std::multimap<std::string, std::string> args;
std::vector<std::string> all(const std::string& key) {
  std::vector<std::string> out;
  auto [from, to] = args.equal_range(key);
  for (auto it = from; it != to; ++it) out.push_back(it->second);
  return out;
}
std::string one(const std::string& key) {
  auto v = all(key);
  return v.empty() ? "" : v.front();
}

void capabilities_and_status() {
  constexpr std::uint64_t kAllowed = (1ull << 29) | (1ull << 5) | (1ull << 10);  // AUDIT_WRITE, KILL, NET_BIND_SERVICE
  std::ifstream in("/proc/self/status");
  std::map<std::string, std::string> fields;
  for (std::string line; std::getline(in, line);) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    auto value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    fields[line.substr(0, colon)] = value;
  }
  for (const char* set : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}) {
    if (!fields.count(set)) {
      untestable(std::string(set) + " is not in /proc/self/status");
      continue;
    }
    std::uint64_t caps = std::stoull(fields[set], nullptr, 16);
    std::string what = std::string(set) + "=" + fields[set];
    if (caps & ~kAllowed) escape(what + " holds more than AUDIT_WRITE, KILL, NET_BIND_SERVICE");
    else block(what + " within AUDIT_WRITE, KILL, NET_BIND_SERVICE", EPERM);
  }
  if (fields["NoNewPrivs"] == "1") block("NoNewPrivs: 1", EPERM);
  else escape("NoNewPrivs: " + fields["NoNewPrivs"]);
  if (fields["Seccomp"] == "2") block("Seccomp: 2 (a filter)", EPERM);
  else escape("Seccomp: " + fields["Seccomp"]);
}

void make_devices() {
  std::vector<std::string> dirs = {"/", "/tmp", "/dev", "/dev/shm", "/run", "/var/tmp", "/etc"};
  if (one("mode") == "rw") dirs.push_back(one("chan"));
  std::vector<std::pair<mode_t, std::string>> nodes;
  for (const auto& dev : all("block")) nodes.emplace_back(S_IFBLK, dev);
  nodes.emplace_back(S_IFCHR, "1:1");     // /dev/mem
  nodes.emplace_back(S_IFCHR, "10:229");  // /dev/fuse
  for (const auto& dir : dirs) {
    for (const auto& [type, dev] : nodes) {
      unsigned major = 0, minor = 0;
      std::sscanf(dev.c_str(), "%u:%u", &major, &minor);
      std::string path = dir + (dir == "/" ? "" : "/") + "hostile-node";
      std::string what = "mknod " + path + (type == S_IFBLK ? " b " : " c ") + dev;
      attempt(what, ::mknod(path.c_str(), type | 0666, makedev(major, minor)), [&] {
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd >= 0) escape("open " + path + " after mknod");
        if (fd >= 0) ::close(fd);
        ::unlink(path.c_str());
      });
    }
  }
}

std::vector<std::string> found_block_devices;
void open_block_devices() {
  for (const char* dir : {"/dev", "/tmp", "/run", "/var/tmp"}) {
    ::nftw(dir, [](const char* path, const struct stat* st, int, FTW*) {
      if (S_ISBLK(st->st_mode)) found_block_devices.push_back(path);
      return 0;
    }, 32, FTW_PHYS);
  }
  for (const auto& planted : all("planted")) {
    struct stat st {};
    if (::lstat(planted.c_str(), &st) < 0 || !(S_ISBLK(st.st_mode) || S_ISCHR(st.st_mode))) {
      untestable("the planted device node " + planted + " is not in the root");
      continue;
    }
    found_block_devices.push_back(planted);
  }
  for (const auto& dev : all("hostdev")) found_block_devices.push_back(dev);
  for (const char* dev : {"/dev/mem", "/dev/kmem", "/dev/port", "/dev/fuse", "/dev/kmsg", "/dev/loop-control"}) {
    found_block_devices.push_back(dev);
  }
  for (const auto& path : found_block_devices) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    attempt("open " + path, fd, [&] { ::close(fd); });
  }
}

int proc_sys_files = 0, sys_files = 0;
int* counting = nullptr;
void open_for_writing(const char* tree) {
  ::nftw(tree, [](const char* path, const struct stat* st, int type, FTW*) {
    if (type != FTW_F || !S_ISREG(st->st_mode)) return 0;
    ++*counting;
    int fd = ::open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      escape(std::string("open for writing ") + path);
      ::close(fd);
    } else {
      ++blocked;  // one line per tree below, not per file
    }
    return 0;
  }, 32, FTW_PHYS);
}
void kernel_settings() {
  counting = &proc_sys_files;
  open_for_writing("/proc/sys");
  counting = &sys_files;
  open_for_writing("/sys");
  std::printf("count: /proc/sys files %d, /sys files %d\n", proc_sys_files, sys_files);
  for (const char* path : {"/proc/sys/kernel/core_pattern", "/proc/sysrq-trigger", "/proc/sys/kernel/modprobe",
                           "/sys/kernel/uevent_helper", "/sys/power/state"}) {
    int fd = ::open(path, O_WRONLY | O_CLOEXEC);
    attempt(std::string("open for writing ") + path, fd, [&] { ::close(fd); });
  }
  for (const char* masked : {"/proc/kcore", "/proc/keys", "/proc/timer_list"}) {
    int fd = ::open(masked, O_RDONLY | O_CLOEXEC);
    char byte;
    long n = fd >= 0 ? ::read(fd, &byte, 1) : -1;
    if (fd >= 0) ::close(fd);
    if (n > 0) escape(std::string("read ") + masked);
    else block(std::string("read ") + masked + " (masked)", n == 0 ? ENODATA : errno);
  }
}

int connect_to(const std::string& name, bool abstract) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::size_t offset = abstract ? 1 : 0;
  std::memcpy(addr.sun_path + offset, name.data(), std::min(name.size(), sizeof addr.sun_path - 1 - offset));
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + offset + name.size());
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), len);
  int err = errno;
  ::close(fd);
  errno = err;
  return rc;
}
void sockets_and_network() {
  for (const auto& name : all("abstract")) attempt("connect to the host's abstract socket @" + name, connect_to(name, true));
  for (const auto& path : all("socket")) attempt("connect to the host's socket " + path, connect_to(path, false));
  if (struct if_nameindex* ifs = ::if_nameindex()) {
    for (auto* i = ifs; i->if_index != 0; ++i) {
      if (std::string(i->if_name) != "lo") escape(std::string("a network interface other than lo: ") + i->if_name);
    }
    block("network interfaces: loopback only", ENODEV);
    ::if_freenameindex(ifs);
  }
}

void host_files() {
  for (const auto& path : all("secret")) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    attempt("read the root-only host file " + path, fd, [&] { ::close(fd); });
  }
  for (const auto& path : all("other")) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    attempt("read another channel's file " + path, fd, [&] { ::close(fd); });
  }
}

void write_root() {
  std::string file = "/hostile-probe-" + std::to_string(::getpid());
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  attempt("create " + file, fd, [&] { ::close(fd); ::unlink(file.c_str()); });
  attempt("mkdir " + file + ".d", ::mkdir((file + ".d").c_str(), 0755), [&] { ::rmdir((file + ".d").c_str()); });
  for (const char* existing : {"/bin/sh", "/etc/passwd"}) {
    int w = ::open(existing, O_WRONLY | O_CLOEXEC);
    attempt(std::string("open for writing ") + existing, w, [&] { ::close(w); });
  }
  struct stat st {};
  ::stat("/", &st);
  attempt("chmod /", ::chmod("/", st.st_mode & 07777));
  attempt("rename /bin", ::rename("/bin", "/bin.hostile"), [] { ::rename("/bin.hostile", "/bin"); });
}

void mounts() {
  std::string chan = one("chan");
  attempt("remount / read-write", ::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND, nullptr));
  attempt("remount /", ::mount(nullptr, "/", nullptr, MS_REMOUNT, nullptr));
  attempt("remount the channel read-write", ::mount(nullptr, chan.c_str(), nullptr, MS_REMOUNT | MS_BIND, nullptr));
  attempt("remount /proc/sys read-write", ::mount(nullptr, "/proc/sys", nullptr, MS_REMOUNT | MS_BIND, nullptr));
  attempt("mount a tmpfs", ::mount("none", "/tmp", "tmpfs", 0, nullptr), [] { ::umount2("/tmp", MNT_DETACH); });
  attempt("mount a proc", ::mount("proc", "/tmp", "proc", 0, nullptr), [] { ::umount2("/tmp", MNT_DETACH); });
  mount_attr attr{};
  attr.attr_clr = MOUNT_ATTR_RDONLY;
  for (const std::string& target : {std::string("/"), chan, std::string("/proc/sys")}) {
    attempt("mount_setattr -ro " + target, ::syscall(SYS_mount_setattr, AT_FDCWD, target.c_str(), 0, &attr, sizeof attr));
  }
  for (const std::string& target : {chan, std::string("/proc/sys"), std::string("/proc/kcore"), std::string("/sys")}) {
    attempt("umount " + target, ::umount2(target.c_str(), MNT_DETACH));
  }
  long fs = ::syscall(SYS_fsopen, "tmpfs", 0);
  attempt("fsopen tmpfs", fs, [&] { ::close(static_cast<int>(fs)); });
  long tree = ::syscall(SYS_open_tree, AT_FDCWD, "/", 1 /* OPEN_TREE_CLONE */);
  attempt("open_tree clone /", tree, [&] { ::close(static_cast<int>(tree)); });
  attempt("pivot_root", ::syscall(SYS_pivot_root, "/tmp", "/tmp"));
  attempt("chroot", ::chroot("/tmp"));
}

void namespaces_and_privileges() {
  attempt("unshare a user namespace", ::unshare(CLONE_NEWUSER));
  attempt("unshare a mount namespace", ::unshare(CLONE_NEWNS));
  long child = ::syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
  if (child == 0) ::_exit(0);
  attempt("clone a user namespace", child, [&] { ::waitpid(static_cast<pid_t>(child), nullptr, 0); });
  struct { std::uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls; } clone_args{};
  clone_args.flags = CLONE_NEWUSER;
  clone_args.exit_signal = SIGCHLD;
  long child3 = ::syscall(SYS_clone3, &clone_args, sizeof clone_args);
  if (child3 == 0) ::_exit(0);
  attempt("clone3 a user namespace", child3, [&] { ::waitpid(static_cast<pid_t>(child3), nullptr, 0); });
  attempt("iopl", ::syscall(SYS_iopl, 3));
  attempt("init_module", ::syscall(SYS_init_module, nullptr, 0, ""));
  attempt("bpf", ::syscall(SYS_bpf, 5 /* BPF_PROG_LOAD */, nullptr, 0));
  attempt("open_by_handle_at", ::syscall(SYS_open_by_handle_at, AT_FDCWD, nullptr, O_RDONLY));
  attempt("sethostname", ::sethostname("hostile", 7));
  attempt("settimeofday", ::syscall(SYS_settimeofday, nullptr, nullptr));
  attempt("reboot (Ctrl-Alt-Del off)", ::syscall(SYS_reboot, 0xfee1dead, 672274793, 0 /* CAD_OFF */, nullptr));
}

void own_channel() {
  std::string file = one("chan") + "/probe-" + std::to_string(::getpid());
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  bool wrote = fd >= 0 && ::write(fd, "mine", 4) == 4;
  int err = errno;
  if (fd >= 0) ::close(fd);
  if (one("mode") == "rw") {
    if (wrote) std::printf("works: write the own channel\n");
    else untestable("the own read-write channel takes no write: " + std::string(std::strerror(err)));
    ::unlink(file.c_str());
  } else if (wrote) {
    escape("write the read-only channel");
  } else {
    block("write the read-only channel", err);
  }
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto eq = a.find('=');
    if (eq != std::string::npos) args.emplace(a.substr(0, eq), a.substr(eq + 1));
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  capabilities_and_status();
  make_devices();
  open_block_devices();
  kernel_settings();
  sockets_and_network();
  host_files();
  write_root();
  mounts();
  namespaces_and_privileges();
  own_channel();
  std::printf("summary: %d blocked, %d escaped, %d untested\n", blocked, escaped, untested);
  return escaped == 0 && untested == 0 ? 0 : 1;
}
