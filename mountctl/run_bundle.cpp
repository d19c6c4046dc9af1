#include "mountctl/run_bundle.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include <fmt/format.h>

#include "mountctl/oci_hook.hpp"
#include "sys/dirs.hpp"
#include "sys/errno_text.hpp"

namespace hostchanfs::mountctl {

namespace {

using nlohmann::json;

std::string path_variable() {
  std::string value;
  for (const auto& dir : container_search_path()) value += (value.empty() ? "" : ":") + dir;
  return "PATH=" + value;
}

// runc's lists (libcontainer/specconv's Example()).
const char* const kMaskedPaths[] = {"/proc/acpi",       "/proc/asound",        "/proc/kcore",
                                    "/proc/keys",       "/proc/latency_stats", "/proc/timer_list",
                                    "/proc/timer_stats", "/proc/sched_debug",  "/sys/firmware",
                                    "/proc/scsi"};
const char* const kReadonlyPaths[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                      "/proc/sysrq-trigger"};

json mount_entry(const char* destination, const char* type, const char* source,
                 std::vector<std::string> options) {
  return json{{"destination", destination}, {"type", type}, {"source", source}, {"options", options}};
}

// runc's mounts, then a /tmp and a /run of the container's own.
json config_mounts() {
  return json::array({
      mount_entry("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}),
      mount_entry("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
      mount_entry("/dev/pts", "devpts", "devpts",
                  {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
      mount_entry("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}),
      mount_entry("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
      mount_entry("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}),
      mount_entry("/sys/fs/cgroup", "cgroup", "cgroup", {"nosuid", "noexec", "nodev", "relatime", "ro"}),
      mount_entry("/tmp", "tmpfs", "tmpfs", {"nosuid", "nodev", "mode=1777"}),
      mount_entry("/run", "tmpfs", "tmpfs", {"nosuid", "nodev", "mode=755"}),
  });
}

json process_section(const ContainerConfig& config) {
  std::vector<std::string> env = {path_variable(), config.uid == 0 ? "HOME=/root" : "HOME=/"};
  if (const char* term = std::getenv("TERM")) env.push_back(fmt::format("TERM={}", term));
  // runc's default open-file limit, never above what we have (raising a hard limit needs
  // CAP_SYS_RESOURCE, which the host may withhold).
  rlimit nofile{};
  ::getrlimit(RLIMIT_NOFILE, &nofile);
  auto limit = std::min<rlim_t>(1024, nofile.rlim_max);
  const auto& caps = container_capabilities();
  return json{
      {"terminal", false},
      {"user", {{"uid", config.uid}, {"gid", config.gid}}},
      {"args", config.args},
      {"env", env},
      {"cwd", "/"},
      {"capabilities",
       {{"bounding", caps}, {"effective", caps}, {"permitted", caps}, {"ambient", caps},
        {"inheritable", json::array()}}},
      {"rlimits", json::array({{{"type", "RLIMIT_NOFILE"}, {"hard", limit}, {"soft", limit}}})},
      {"noNewPrivileges", true},
  };
}

json linux_section(const ContainerConfig& config) {
  json namespaces = json::array();
  for (const char* type : {"pid", "network", "ipc", "uts", "mount", "cgroup"}) {
    namespaces.push_back({{"type", type}});
  }
  json resources{{"devices", json::array({{{"allow", false}, {"access", "rwm"}}})}};
  if (config.memory_limit) resources["memory"] = {{"limit", *config.memory_limit}};
  json section{{"resources", resources},
               {"namespaces", namespaces},
               {"maskedPaths", kMaskedPaths},
               {"readonlyPaths", kReadonlyPaths}};
  if (config.user_namespace) {
    section["namespaces"].push_back({{"type", "user"}});
    json mapping = json::array({{{"containerID", 0}, {"hostID", kUserNsHostId}, {"size", kUserNsSize}}});
    section["uidMappings"] = mapping;
    section["gidMappings"] = mapping;
  }
  if (config.seccomp) section["seccomp"] = *config.seccomp;
  return section;
}

json hooks_section(const ContainerConfig& config) {
  std::vector<std::string> args = {"hostchanfs", "oci-hook"};
  args.insert(args.end(), config.hook_args.begin(), config.hook_args.end());
  json hook = json::array({{{"path", config.hook_program}, {"args", args}, {"env", {path_variable()}}}});
  return json{{"createRuntime", hook}, {"poststop", hook}};
}

}  // namespace

const std::vector<std::string>& container_capabilities() {
  static const std::vector<std::string> caps = {"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"};
  return caps;
}

const std::vector<std::string>& container_search_path() {
  static const std::vector<std::string> dirs = {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin",
                                                "/usr/bin", "/sbin", "/bin"};
  return dirs;
}

const std::vector<std::string>& config_mount_points() {
  static const std::vector<std::string> points = [] {
    std::vector<std::string> out;
    for (const json& m : config_mounts()) {
      std::string destination = m["destination"];
      // Those below /dev and /sys are made in the runtime's own /dev tmpfs and sysfs.
      if (std::count(destination.begin(), destination.end(), '/') == 1) out.push_back(destination);
    }
    return out;
  }();
  return points;
}

json make_oci_config(const ContainerConfig& config) {
  return json{
      {"ociVersion", "1.0.2"},
      {"process", process_section(config)},
      {"root", {{"path", config.rootfs}, {"readonly", true}}},
      {"hostname", "hostchanfs"},
      {"mounts", config_mounts()},
      {"hooks", hooks_section(config)},
      {"annotations",
       {{std::string(kChannelAnnotation), config.channel},
        {std::string(kChargeAnnotation), std::string(fs::charge_name(config.charge))},
        {"run.oci.hooks.stderr", config.hooks_log}}},
      {"linux", linux_section(config)},
  };
}

std::string bundles_dir(const std::string& run_dir) { return run_dir + "-run"; }

Expected<Bundle> Bundle::make(const std::string& bundles, const std::string& id,
                              std::optional<uid_t> owner) {
  auto made = make_dirs(bundles, 0755, 0711);
  if (!made) {
    return Error::failure(fmt::format("cannot make {}: {}", made.error().path, errno_text(made.error().error)));
  }
  UniqueFd parent(::open(bundles.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  struct stat st {};
  if (!parent || ::fstat(parent.get(), &st) < 0) {
    return Error::failure(fmt::format("cannot open {}: {}", bundles, errno_text(last_errc())));
  }
  if (st.st_uid != 0 || (st.st_mode & 022) != 0) {
    return Error::bad_input(fmt::format(
        "{} is not root's alone (owner {}, mode {:o}): remove it, hostchanfs run makes it", bundles,
        st.st_uid, st.st_mode & 07777));
  }
  if (::mkdirat(parent.get(), id.c_str(), 0700) < 0) {
    return Error::failure(fmt::format("cannot make the bundle {}/{}: {}", bundles, id, errno_text(last_errc())));
  }
  std::string dir = bundles + "/" + id;
  UniqueFd fd(::openat(parent.get(), id.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  Bundle bundle(dir, std::move(fd));  // from here on, removed on every path
  if (!bundle.fd_ || ::mkdirat(bundle.fd_.get(), "rootfs", 0755) < 0 ||
      (owner && ::fchownat(bundle.fd_.get(), "", *owner, *owner, AT_EMPTY_PATH) < 0)) {
    return Error::failure(fmt::format("cannot make the bundle {}: {}", dir, errno_text(last_errc())));
  }
  return bundle;
}

Expected<void> Bundle::write_config(const json& config) {
  std::string text = config.dump(2);
  UniqueFd out(::openat(fd_.get(), "config.json", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out || ::write(out.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return Error::failure(fmt::format("cannot write {}/config.json: {}", dir_, errno_text(last_errc())));
  }
  return success();
}

Bundle::~Bundle() {
  if (dir_.empty()) return;
  fd_.reset();
  remove_bundle(dir_);
}

void remove_bundle(const std::string& dir) noexcept {
  std::string rootfs = dir + "/rootfs";
  ::umount2(rootfs.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
  for (const char* file : {"config.json", "pid", "hooks.log"}) {
    ::unlink((dir + "/" + file).c_str());
  }
  ::rmdir(rootfs.c_str());
  ::rmdir(dir.c_str());
}

}  // namespace hostchanfs::mountctl
