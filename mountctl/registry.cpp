#include "mountctl/registry.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <memory>

#include <fmt/format.h>

#include "mountctl/run_dir.hpp"
#include "sys/errno_text.hpp"
#include "sys/log.hpp"
#include "sys/pidfd.hpp"
#include "sys/read_file.hpp"

namespace hostchanfs::mountctl {

namespace {

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

// Takes the channel's descriptors back from its daemon when that daemon is still the one
// that serves the channel (its command line names `serve` and the host path: a pid that was
// reused is not adopted).
void adopt_daemon(Channel& ch, const json& record) {
  if (ch.daemon_pid <= 0) return;
  auto pidfd = open_pidfd(ch.daemon_pid);
  if (!pidfd) return;
  std::string args = read_small_file(fmt::format("/proc/{}/cmdline", ch.daemon_pid));
  if (args.find(std::string("serve") + '\0') == std::string::npos ||
      args.find(ch.spec.host_path) == std::string::npos) {
    return;
  }
  // The daemon's descriptor numbers (the same as the controller's at spawn time).
  auto fds = record.value("daemon_fds", json::object());
  auto take = [&](const char* key) {
    auto fd = take_fd(pidfd.value().get(), fds.value(key, -1));
    return fd ? std::move(fd).value() : UniqueFd();
  };
  ch.fuse_fd = take("fuse");
  ch.meta_fd = take("meta");
  ch.data_fd = take("data");
  ch.daemon_pidfd = std::move(pidfd).value();
  ch.state = ChannelState::kRunning;
}

}  // namespace

json channel_record(const Channel& ch) {
  json r = json(ch.spec);
  r["owner_id"] = ch.owner_id;
  r["owner_pid"] = ch.owner_pid ? json(*ch.owner_pid) : json(nullptr);
  r["uid"] = ch.uid;
  r["gid"] = ch.gid;
  r["max_inodes"] = ch.max_inodes;
  r["created_dirs"] = ch.created_dirs;
  r["daemon_pid"] = ch.daemon_pid;
  r["state"] = state_name(ch.state);
  // The daemon's descriptor numbers (the same as ours at spawn time): a restarted
  // controller can take them back from the daemon with pidfd_getfd.
  r["daemon_fds"] = {{"fuse", ch.fuse_fd.get()}, {"meta", ch.meta_fd.get()}, {"data", ch.data_fd.get()}};
  return r;
}

Channel channel_from_record(const json& r) {
  Channel ch;
  r.get_to(ch.spec);
  r.at("owner_id").get_to(ch.owner_id);
  if (r.contains("owner_pid") && !r["owner_pid"].is_null()) ch.owner_pid = r["owner_pid"].get<pid_t>();
  r.at("uid").get_to(ch.uid);
  r.at("gid").get_to(ch.gid);
  r.at("max_inodes").get_to(ch.max_inodes);
  r.at("created_dirs").get_to(ch.created_dirs);
  r.at("daemon_pid").get_to(ch.daemon_pid);
  ch.state = r.value("state", "failed") == "running" ? ChannelState::kRunning : ChannelState::kFailed;
  return ch;
}

bool registry_has_channels(const std::string& run_dir) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(registry_dir(run_dir), ec)) {
    if (entry.path().extension() == ".json") return true;
  }
  return false;
}

Registry::Registry(const std::string& run_dir) : dir_(registry_dir(run_dir)) {}

Expected<void> Registry::make_dir() const {
  if (::mkdir(dir_.c_str(), 0700) < 0 && errno != EEXIST) {
    return Error::failure(fmt::format("cannot make {}: {}", dir_, errno_text(last_errc())));
  }
  return success();
}

void Registry::save(const Channel& ch) const {
  auto log = log::get("controller");
  std::string final_path = dir_ + "/" + registry_name(ch.spec.host_path);
  std::string tmp = final_path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << channel_record(ch).dump(2) << "\n";
    if (!out) {
      log->error("cannot write {}", tmp);
      return;
    }
  }
  // rename: a reader (or a restarted controller) sees the old entry or the new one.
  if (::rename(tmp.c_str(), final_path.c_str()) < 0) {
    log->error("cannot write {}: {}", final_path, errno_text(last_errc()));
  }
}

void Registry::forget(const std::string& host_path) const {
  std::string path = dir_ + "/" + registry_name(host_path);
  ::unlink(path.c_str());
}

std::vector<Channel> Registry::load() const {
  auto log = log::get("controller");
  std::vector<Channel> channels;
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir_.c_str()), ::closedir);
  if (!d) return channels;
  while (dirent* e = ::readdir(d.get())) {
    std::string name = e->d_name;
    if (name.size() < 5 || name.substr(name.size() - 5) != ".json") continue;
    try {
      std::ifstream in(dir_ + "/" + name);
      json record = json::parse(in);
      Channel ch = channel_from_record(record);
      ch.state = ChannelState::kFailed;
      adopt_daemon(ch, record);
      log->info("registry: channel {} ({}), daemon pid {}", ch.spec.host_path,
                ch.state == ChannelState::kRunning ? "adopted" : "failed", ch.daemon_pid);
      if (ch.owner_pid) {
        auto owner = open_pidfd(*ch.owner_pid);
        if (owner) ch.owner_pidfd = std::move(owner).value();
      }
      channels.push_back(std::move(ch));
    } catch (const std::exception& ex) {
      log->error("registry: ignoring {}: {}", name, ex.what());
    }
  }
  return channels;
}

}  // namespace hostchanfs::mountctl
