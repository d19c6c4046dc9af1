#include "tests/oci/oci_support.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "mountctl/client.hpp"
#include "sys/errno_text.hpp"
#include "sys/pidfd.hpp"
#include "sys/read_file.hpp"
#include "sys/unique_fd.hpp"
#include "tests/support/mounts.hpp"

namespace hostchanfs::testing::oci {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr long kFuseSuperMagic = 0x65735546;
// Generous bounds for waits on other processes (never asserted as timings).
constexpr auto kWaitLimit = 60s;

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + errno_text(errno));
}

void check(bool ok, const std::string& what) {
  if (!ok) fail(what);
}

std::vector<std::string> split_words(const std::string& text) { return CrunCgroups::words(text); }

pid_t parent_of(pid_t pid) {
  std::string stat = read_small_file("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  auto fields = split_words(stat.substr(close + 1));
  return fields.size() > 1 ? static_cast<pid_t>(std::stol(fields[1])) : 0;
}

char process_state(pid_t pid) {
  std::string stat = read_small_file("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size()) return 0;
  return stat[close + 2];
}

// Our children (the subreaper adopts orphans: the controller, container processes).
std::vector<pid_t> our_children() {
  std::vector<pid_t> result;
  std::error_code ec;
  for (const auto& entry : stdfs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = static_cast<pid_t>(std::stol(name));
    if (parent_of(pid) == ::getpid()) result.push_back(pid);
  }
  return result;
}

// Reap a child we adopted, killing it if it does not end on SIGTERM.
void terminate_child(pid_t pid) {
  if (auto pidfd = open_pidfd(pid)) terminate_pidfd(pidfd.value().get(), 20s);
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

class PrivateHostEnvironment : public ::testing::Environment {
 public:
  static bool& started() {
    static bool value = false;
    return value;
  }
  void TearDown() override {
    if (started()) PrivateHost::get().shutdown();
  }
};
const auto* const kEnvironment = ::testing::AddGlobalTestEnvironment(new PrivateHostEnvironment);

}  // namespace

// ---------------------------------------------------------------------------------------

std::string CommandResult::describe() const {
  return "exit " + std::to_string(exit_code) + "\n--- stdout:\n" + out + "--- stderr:\n" + err;
}

CommandResult run_command(const std::vector<std::string>& argv, const CommandOptions& options) {
  std::array<int, 2> in{}, out{}, err{};
  check(::pipe2(in.data(), O_CLOEXEC) == 0 && ::pipe2(out.data(), O_CLOEXEC) == 0 &&
            ::pipe2(err.data(), O_CLOEXEC) == 0,
        "pipe2");
  UniqueFd in_r(in[0]), in_w(in[1]), out_r(out[0]), out_w(out[1]), err_r(err[0]), err_w(err[1]);
  UniqueFd output_file;
  if (!options.output_file.empty()) {
    output_file.reset(::open(options.output_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    check(static_cast<bool>(output_file), "open " + options.output_file);
  }
  Exec exec(argv);
  exec.search_path().env(options.env).place_fd(in_r.get(), STDIN_FILENO);
  if (output_file) {
    exec.place_fd(output_file.get(), STDOUT_FILENO).place_fd(output_file.get(), STDERR_FILENO);
  } else {
    exec.place_fd(out_w.get(), STDOUT_FILENO).place_fd(err_w.get(), STDERR_FILENO);
  }
  if (!options.cwd.empty()) exec.cwd(options.cwd);
  ChildProcess child = ChildProcess::spawn(exec);
  in_r.reset();
  out_w.reset();
  err_w.reset();
  output_file.reset();

  // Feed stdin (states are small: one write fits the pipe), then drain both outputs.
  if (!options.stdin_text.empty()) {
    auto n = ::write(in_w.get(), options.stdin_text.data(), options.stdin_text.size());
    (void)n;
  }
  in_w.reset();
  CommandResult result;
  std::array<pollfd, 2> fds{pollfd{out_r.get(), POLLIN, 0}, pollfd{err_r.get(), POLLIN, 0}};
  std::array<std::string*, 2> sinks{&result.out, &result.err};
  int open_count = 2;
  while (open_count > 0) {
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      fail("poll");
    }
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      auto n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<std::size_t>(n));
      } else {
        fds[i].fd = -1;
        --open_count;
      }
    }
  }
  result.exit_code = child.wait();
  return result;
}

// ---------------------------------------------------------------------------------------

void write_file(const stdfs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.close();
  if (!out) fail("write " + path.string());
}

bool is_fuse_mount(const stdfs::path& path) {
  struct statfs sfs {};
  return ::statfs(path.c_str(), &sfs) == 0 && sfs.f_type == kFuseSuperMagic;
}

bool wait_process_gone(pid_t pid) {
  auto pidfd = open_pidfd(pid);
  return !pidfd || wait_pidfd(pidfd.value().get(), kWaitLimit);
}

bool eventually(const std::function<bool()>& condition) {
  auto deadline = std::chrono::steady_clock::now() + kWaitLimit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

// ---------------------------------------------------------------------------------------

PrivateHost& PrivateHost::get() {
  static PrivateHost host;
  PrivateHostEnvironment::started() = true;
  return host;
}

PrivateHost::PrivateHost() : dir_("hostchanfs-oci-host") {
  check(::unshare(CLONE_NEWNS) == 0, "unshare(CLONE_NEWNS)");
  check(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0, "make / rprivate");
  check(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0, "PR_SET_CHILD_SUBREAPER");
  run_dir_ = (dir() / "run").string();
  ::setenv("HOSTCHANFS_RUN_DIR", run_dir_.c_str(), 1);
  // The tests' channels are in their temporary directories: the hook may make them there.
  config_ = (dir() / "config.json").string();
  write_file(config_, nlohmann::json{{"hook_channel_root", "/tmp"}}.dump());
  cgroups_.emplace(dir());
}

std::vector<std::string> PrivateHost::hook_env() const {
  return {"HOSTCHANFS_RUN_DIR=" + run_dir_, "HOSTCHANFS_CONFIG=" + config_,
          "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
}

void PrivateHost::start_controller() {
  if (controller_.running()) return;
  auto log = dir() / "controller.log";
  UniqueFd log_fd(::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  Exec exec({"hostchanfs", "controller", "--run-dir", run_dir_});
  exec.program(HOSTCHANFS_BIN);
  if (log_fd) exec.place_fd(log_fd.get(), STDERR_FILENO);
  // SIGTERM makes the controller remove every channel and exit: even a test that is
  // killed outright leaves no channel behind.
  controller_ = ChildProcess::spawn(exec, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + kWaitLimit;
  while (!mountctl::ControllerClient::connect_existing(run_dir_)) {
    if (std::chrono::steady_clock::now() > deadline || controller_.wait_for(0ms)) {
      controller_ = ChildProcess();
      throw std::runtime_error("the test controller did not start: " + read_small_file(log));
    }
    std::this_thread::sleep_for(20ms);
  }
}

// Controllers of our run dir, wherever they ended up: one started on demand by a hook
// under podman is conmon's child first, and ours or init's only once conmon has gone.
std::vector<pid_t> PrivateHost::controllers_of_run_dir() const {
  const std::string wanted = std::string("hostchanfs") + '\0' + "controller" + '\0' +
                             "--run-dir" + '\0' + run_dir_ + '\0';
  std::vector<pid_t> result;
  std::error_code ec;
  for (const auto& entry : stdfs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto cmdline = read_small_file((entry.path() / "cmdline").string());
    auto args = cmdline.find('\0');
    // argv[0] may be a full path; compare from its last component on.
    auto base = cmdline.substr(0, args).rfind('/');
    if (cmdline.substr(base == std::string::npos ? 0 : base + 1) == wanted) {
      result.push_back(static_cast<pid_t>(std::stol(name)));
    }
  }
  return result;
}

void PrivateHost::stop_controller() {
  controller_.terminate(20s);
  for (pid_t pid : controllers_of_run_dir()) {
    ::kill(pid, SIGTERM);
    ::waitpid(pid, nullptr, WNOHANG);
    if (!wait_process_gone(pid)) ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, WNOHANG);
  }
  // Anything else a runtime left to us (the subreaper adopts orphans).
  for (pid_t pid : our_children()) terminate_child(pid);
}

std::optional<mountctl::ChannelInfo> channel_at(const stdfs::path& host_path) {
  auto client = mountctl::ControllerClient::connect_existing(PrivateHost::get().run_dir());
  if (!client) return std::nullopt;
  auto channels = client.value().list();
  if (!channels) return std::nullopt;
  for (const auto& c : channels.value()) {
    if (c.spec.host_path == host_path.string()) return c;
  }
  return std::nullopt;
}

void PrivateHost::shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  stop_controller();
  cgroups_.reset();
}

// ---------------------------------------------------------------------------------------

void make_busybox_rootfs(const stdfs::path& rootfs) {
  auto bin = rootfs / "bin";
  stdfs::create_directories(bin);
  for (const char* d : {"proc", "sys", "dev", "tmp", "etc"}) stdfs::create_directories(rootfs / d);
  stdfs::copy_file("/bin/busybox", bin / "busybox");
  auto list = run_command({"/bin/busybox", "--list"});
  if (list.exit_code != 0) throw std::runtime_error("busybox --list: " + list.describe());
  for (const auto& applet : split_words(list.out)) {
    if (applet != "busybox") stdfs::create_symlink("busybox", bin / applet);
  }
}

void add_host_program(const stdfs::path& rootfs, const std::string& program) {
  // The program and every library `ldd` names, at the same paths.
  auto ldd = run_command({"ldd", program});
  if (ldd.exit_code != 0) throw std::runtime_error("ldd " + program + ": " + ldd.describe());
  std::vector<std::string> files{program};
  for (const auto& word : split_words(ldd.out)) {
    if (word.front() == '/') files.push_back(word);
  }
  for (const auto& file : files) {
    auto target = rootfs / stdfs::path(file).relative_path();
    stdfs::create_directories(target.parent_path());
    stdfs::copy_file(stdfs::canonical(file), target, stdfs::copy_options::overwrite_existing);
    ::chmod(target.c_str(), 0755);
  }
}

nlohmann::json make_bundle(const stdfs::path& dir, const BundleOptions& options) {
  stdfs::create_directories(dir);
  make_busybox_rootfs(dir / "rootfs");
  CommandOptions in_bundle;
  in_bundle.cwd = dir.string();
  auto spec = run_command({options.runtime, "spec"}, in_bundle);
  if (spec.exit_code != 0) throw std::runtime_error(options.runtime + " spec: " + spec.describe());
  json config = json::parse(read_file(dir / "config.json"));
  config["process"]["terminal"] = false;
  config["process"]["args"] = options.args;
  // The channel's mount point is created in the rootfs by the hook.
  config["root"]["readonly"] = false;
  if (options.with_hooks) {
    // The shipped example, pointed at the binary under test and its controller.
    json example = json::parse(
        read_file(stdfs::path(HOSTCHANFS_SOURCE_DIR) / "oci" / "runc-hooks-example.json"));
    for (auto& [stage, hooks] : example["hooks"].items()) {
      for (auto& hook : hooks) {
        hook["path"] = HOSTCHANFS_BIN;
        hook["env"] = PrivateHost::get().hook_env();
      }
      config["hooks"][stage] = hooks;
    }
  }
  if (options.channel) config["annotations"]["io.hostchanfs.channel"] = *options.channel;
  // crun drops a hook's stderr unless told where to put it; the hook's one-line errors
  // are what a test (and a person) needs to see.
  if (options.runtime == "crun") {
    config["annotations"]["run.oci.hooks.stderr"] = (dir / "hooks.log").string();
  }
  if (options.user_namespace) {
    config["linux"]["namespaces"].push_back({{"type", "user"}});
    json mapping = json::array({{{"containerID", 0}, {"hostID", kUserNsHostId}, {"size", 65536}}});
    config["linux"]["uidMappings"] = mapping;
    config["linux"]["gidMappings"] = mapping;
  }
  write_file(dir / "config.json", config.dump(2));
  return config;
}

// ---------------------------------------------------------------------------------------

OciContainer::OciContainer(std::string runtime, stdfs::path bundle, std::string id)
    : runtime_(std::move(runtime)),
      bundle_(std::move(bundle)),
      id_(std::move(id)),
      state_root_(PrivateHost::get().dir() / ("state-" + runtime_)) {
  stdfs::create_directories(state_root_);
}

OciContainer::~OciContainer() {
  if (!status().empty()) run_command({runtime_, "--root", state_root_, "delete", "--force", id_});
}

std::vector<std::string> OciContainer::base() const {
  return {runtime_, "--root", state_root_.string()};
}

CommandResult OciContainer::create() {
  auto argv = base();
  argv.insert(argv.end(), {"create", "--bundle", bundle_.string(), id_});
  auto log = bundle_ / "output.log";
  CommandOptions to_log;
  to_log.output_file = log.string();
  auto r = run_command(argv, to_log);
  // The runtime's own errors land in the log too; runc quotes a failed hook's stderr in
  // them, crun writes it to the bundle's hooks.log (see make_bundle).
  r.err = read_small_file(log.string()) + read_small_file((bundle_ / "hooks.log").string());
  return r;
}

CommandResult OciContainer::start() {
  auto argv = base();
  argv.insert(argv.end(), {"start", id_});
  return run_command(argv);
}

CommandResult OciContainer::remove() {
  auto argv = base();
  argv.insert(argv.end(), {"delete", id_});
  return run_command(argv);
}

json OciContainer::state() {
  auto argv = base();
  argv.insert(argv.end(), {"state", id_});
  auto r = run_command(argv);
  if (r.exit_code != 0) return json::object();
  try {
    return json::parse(r.out);
  } catch (const json::exception&) {
    return json::object();
  }
}

std::string OciContainer::status() { return state().value("status", ""); }

pid_t OciContainer::pid() { return state().value("pid", pid_t{0}); }

bool OciContainer::wait_stopped() {
  auto deadline = std::chrono::steady_clock::now() + kWaitLimit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (status() == "stopped") {
      // The container's init was our (adopted) child: reap it.
      for (pid_t pid : our_children()) {
        if (process_state(pid) == 'Z') ::waitpid(pid, nullptr, WNOHANG);
      }
      return true;
    }
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

std::string OciContainer::output() const { return read_small_file((bundle_ / "output.log").string()); }

// ---------------------------------------------------------------------------------------

namespace {

// The cgroups podman's cgroupfs manager makes for pods, in every hierarchy, as they are now.
std::vector<stdfs::path> libpod_cgroup_parents() {
  std::vector<stdfs::path> found;
  for (const auto& m : mounts()) {
    if (m.fstype != "cgroup" && m.fstype != "cgroup2") continue;
    auto parent = stdfs::path(m.mount_point) / "libpod_parent";
    std::error_code ec;
    if (stdfs::is_directory(parent, ec)) found.push_back(parent);
  }
  return found;
}

// rmdir a cgroup tree, deepest first (a cgroup's files cannot be unlinked, only the
// directories removed once empty of processes).
void remove_cgroup_tree(const stdfs::path& dir) {
  std::error_code ec;
  for (const auto& entry : stdfs::directory_iterator(dir, ec)) {
    if (entry.is_directory(ec) && !entry.is_symlink(ec)) remove_cgroup_tree(entry.path());
  }
  ::rmdir(dir.c_str());
}

}  // namespace

Podman::Podman(const stdfs::path& dir, Cgroups cgroups) : dir_(dir), cgroups_(cgroups) {
  if (cgroups_ == Cgroups::kForPods) cgroup_parents_before_ = libpod_cgroup_parents();
  stdfs::create_directories(dir_ / "hooks.d");
  // crun sets the container's rlimits; nothing here may raise a hard limit (the host
  // may withhold CAP_SYS_RESOURCE), so ask for at most what we have.
  auto limit = [](int resource, rlim_t want) {
    rlimit r{};
    ::getrlimit(resource, &r);
    return std::to_string(std::min<rlim_t>(want, r.rlim_cur));
  };
  std::string nofile = limit(RLIMIT_NOFILE, 1024), nproc = limit(RLIMIT_NPROC, 4096);
  auto d = dir_.string();
  write_file(dir_ / "containers.conf",
             "[containers]\n"
             "netns = \"none\"\n"
             "default_ulimits = [\"nofile=" + nofile + ":" + nofile + "\", \"nproc=" + nproc +
                 ":" + nproc + "\"]\n"
             "[engine]\n"
             "cgroup_manager = \"cgroupfs\"\n"
             "runtime = \"" + std::string(cgroups_ == Cgroups::kForPods ? "runc" : "crun") + "\"\n"
             "events_logger = \"file\"\n"
             "events_logfile_path = \"" + d + "/events.log\"\n"
             "tmp_dir = \"" + d + "/tmp\"\n"
             "volume_path = \"" + d + "/volumes\"\n"
             "static_dir = \"" + d + "/static\"\n");
  json hook = json::parse(
      read_file(stdfs::path(HOSTCHANFS_SOURCE_DIR) / "oci" / "hooks.d" / "hostchanfs.json"));
  hook["hook"]["path"] = HOSTCHANFS_BIN;
  hook["hook"]["env"] = PrivateHost::get().hook_env();
  write_file(dir_ / "hooks.d" / "hostchanfs.json", hook.dump(2));
}

Podman::~Podman() {
  for (const auto& name : names_) podman({"rm", "--force", "--ignore", "--time", "0", name});
  for (const auto& pod : pods_) podman({"pod", "rm", "--force", "--ignore", "--time", "0", pod});
  if (cgroups_ != Cgroups::kForPods) return;
  for (const auto& parent : libpod_cgroup_parents()) {
    if (std::find(cgroup_parents_before_.begin(), cgroup_parents_before_.end(), parent) ==
        cgroup_parents_before_.end()) {
      remove_cgroup_tree(parent);
    }
  }
}

void Podman::import_image(const stdfs::path& rootfs, const std::string& name) {
  auto tar = dir_ / "image.tar";
  auto packed = run_command({"tar", "-C", rootfs.string(), "-cf", tar.string(), "."});
  if (packed.exit_code != 0) throw std::runtime_error("tar " + rootfs.string() + ": " + packed.describe());
  auto imported = podman({"import", tar.string(), name});
  if (imported.exit_code != 0) throw std::runtime_error("podman import: " + imported.describe());
  stdfs::remove(tar);
}

CommandResult Podman::podman(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"podman",         "--root",         (dir_ / "root").string(),
                                   "--runroot",      (dir_ / "runroot").string(),
                                   "--storage-driver", "vfs",          "--hooks-dir",
                                   (dir_ / "hooks.d").string()};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandOptions options;
  options.env = {"CONTAINERS_CONF=" + (dir_ / "containers.conf").string()};
  return run_command(argv, options);
}

CommandResult Podman::run(const std::string& name, const std::string& rootfs,
                          const std::vector<std::string>& extra_args,
                          const std::vector<std::string>& command) {
  names_.push_back(name);
  // No cgroups: podman's cgroupfs manager would leave libpod_parent/ in every hierarchy.
  std::vector<std::string> args = {"run",           "--rm",   "--name", name, "--cgroups=disabled",
                                   "--network", "none"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  args.insert(args.end(), {"--rootfs", rootfs});
  args.insert(args.end(), command.begin(), command.end());
  return podman(args);
}

}  // namespace hostchanfs::testing::oci
