#include "mountctl/registry.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <optional>
#include <stdexcept>

#include <boost/uuid/name_generator_sha1.hpp>
#include <boost/uuid/uuid_io.hpp>
#include <fmt/format.h>

#include "fs/passthrough.hpp"
#include "mountctl/text.hpp"
#include "sys/errno_text.hpp"
#include "sys/log.hpp"
#include "sys/pidfd.hpp"
#include "sys/read_file.hpp"

namespace hostchanfs::mountctl {

namespace {

constexpr int kRecordVersion = 3;  // 3: a keeper holds the descriptors, and a session record
constexpr std::size_t kMaxRecordBytes = 1 << 20;

json id_json(const FileId& id) { return {{"dev", id.dev}, {"ino", id.ino}}; }
FileId id_from(const json& j) { return {j.at("dev").get<dev_t>(), j.at("ino").get<ino_t>()}; }

// The arguments of process `pid`.
std::vector<std::string> arguments_of(pid_t pid) {
  std::string text = read_small_file(fmt::format("/proc/{}/cmdline", pid));
  std::vector<std::string> args;
  for (std::size_t at = 0; at < text.size();) {
    std::size_t end = text.find('\0', at);
    if (end == std::string::npos) end = text.size();
    args.push_back(text.substr(at, end - at));
    at = end + 1;
  }
  return args;
}

bool is_fuse_device(int fd) {
  struct stat st {}, dev {};
  return ::fstat(fd, &st) == 0 && ::stat("/dev/fuse", &dev) == 0 && S_ISCHR(st.st_mode) &&
         st.st_rdev == dev.st_rdev;
}

// A memfd made as `name` (make_memfd).
bool is_memfd_named(int fd, const char* name) {
  std::string link(256, '\0');
  ssize_t n = ::readlink(fmt::format("/proc/self/fd/{}", fd).c_str(), link.data(), link.size());
  link.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return link == fmt::format("/memfd:{} (deleted)", name);
}

// The memfd made as `name`, and that very one.
bool is_memfd(int fd, const char* name, const FileId& id) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && file_id(st) == id && is_memfd_named(fd, name);
}

// Takes the channel's descriptors back from the process the record says holds them, when
// it is still the keeper that serves the channel (a pid that was reused is not adopted)
// and each descriptor is what it must be. Why not, or nullopt once adopted.
std::optional<std::string> adopt(Channel& ch) {
  const DescriptorHolder& holder = ch.holder;
  if (holder.pid <= 0 || holder.pid != ch.keeper_pid) return "no keeper is recorded";
  auto pidfd = open_pidfd(holder.pid);
  if (!pidfd) return fmt::format("its keeper pid {} is gone", holder.pid);
  auto args = arguments_of(holder.pid);
  if (args.size() < 3 || args[1] != "keep" || args.back() != ch.spec.host_path) {
    return fmt::format("pid {} is not its keeper", holder.pid);
  }
  auto take = [&](int number) {
    auto fd = take_fd(pidfd.value().get(), number);
    return fd ? std::move(fd).value() : UniqueFd();
  };
  UniqueFd fuse = take(holder.fuse), meta = take(holder.meta), data = take(holder.data),
           session = take(holder.session);
  if (!fuse || !is_fuse_device(fuse.get())) {
    return fmt::format("descriptor {} of its keeper pid {} is not /dev/fuse", holder.fuse, holder.pid);
  }
  if (!meta || !is_memfd(meta.get(), "hostchanfs-meta", ch.meta_id) || !data ||
      !is_memfd(data.get(), "hostchanfs-data", ch.data_id) || !session ||
      !is_memfd(session.get(), "hostchanfs-session", ch.session_id)) {
    return fmt::format("descriptors {}, {} and {} of its keeper pid {} are not its store's memfds "
                       "and session record", holder.meta, holder.data, holder.session, holder.pid);
  }
  UniqueFd backing;
  if (ch.charge == fs::Charge::kWriter) {
    backing = take(holder.backing);
    if (!backing || !fs::is_tmpfs_root(backing.get()))
      return fmt::format("descriptor {} of its keeper pid {} is not its backing tmpfs", holder.backing, holder.pid);
  }
  if (!is_mounted(ch.mount)) return "its mount is gone";
  ch.backing_fd = std::move(backing);
  // The request counters, if the keeper has them (else: none).
  if (holder.metrics >= 0) {
    if (UniqueFd counters = take(holder.metrics); counters && is_memfd_named(counters.get(), "hostchanfs-metrics")) {
      ch.metrics_fd = std::move(counters);
    }
  }
  // The clones of the connection: all of them, or none (the channel then loses only the
  // keeper's death without a lost request; its daemons still have theirs).
  std::vector<UniqueFd> clones;
  for (int i = 0; i < holder.clone_count; ++i) {
    UniqueFd clone = take(holder.clones + i);
    if (!clone || !is_fuse_device(clone.get())) {
      log::get("mountctl")->warn("channel {}: descriptor {} of its keeper pid {} is not a /dev/fuse clone: "
                                 "not adopted", ch.spec.host_path, holder.clones + i, holder.pid);
      clones.clear();
      break;
    }
    clones.push_back(std::move(clone));
  }
  ch.clone_fds = std::move(clones);
  ch.fuse_fd = std::move(fuse);
  ch.meta_fd = std::move(meta);
  ch.data_fd = std::move(data);
  ch.session_fd = std::move(session);
  ch.keeper_pidfd = std::move(pidfd).value();
  ch.state = ChannelState::kRunning;
  return std::nullopt;
}

// Why a record read back cannot be trusted as it is, or nullopt.
std::optional<std::string> record_problem(const Channel& ch, const std::string& file_name) {
  const std::string& host = ch.spec.host_path;
  if (text_problem(host) || !path_components(host) || host == "/") return "its host path is not clean";
  if (record_name(host) != file_name) return "its file name is not its host path's";
  for (const MadeDir& d : ch.made_dirs) {
    if (!path_is_within(host, d.path)) return "it made a directory that is not on its host path";
  }
  for (const ChannelMember& m : ch.members) {
    const std::string& bundle = m.who.bundle;
    if (text_problem(m.who.id) || (!bundle.empty() && (text_problem(bundle) || bundle.front() != '/'))) {
      return "a member's id or bundle is not clean";
    }
  }
  return std::nullopt;
}

}  // namespace

std::string record_name(const std::string& host_path) {
  static const boost::uuids::name_generator_sha1 generate(boost::uuids::ns::url());
  return boost::uuids::to_string(generate(host_path)) + ".json";
}

json channel_record(const Channel& ch) {
  json r = json(ch.spec);
  r["version"] = kRecordVersion;
  r["owner_id"] = ch.owner_id;
  r["owner_pid"] = ch.owner_pid ? json(*ch.owner_pid) : json(nullptr);
  r["uid"] = ch.uid;
  r["gid"] = ch.gid;
  r["max_inodes"] = ch.max_inodes;
  r["charge"] = fs::charge_name(ch.charge);
  r["made_dirs"] = json::array();
  for (const MadeDir& d : ch.made_dirs) r["made_dirs"].push_back({{"path", d.path}, {"id", id_json(d.id)}});
  r["mount"] = {{"unique_id", ch.mount.unique_id}, {"id", ch.mount.id}, {"dev", ch.mount.dev}};
  r["memory"] = {{"meta", id_json(ch.meta_id)}, {"data", id_json(ch.data_id)},
                 {"session", id_json(ch.session_id)}};
  r["keeper_pid"] = ch.keeper_pid;
  const DescriptorHolder& h = ch.holder;
  r["holder"] = {{"pid", h.pid},   {"fuse", h.fuse},       {"meta", h.meta},
                 {"data", h.data}, {"session", h.session}, {"backing", h.backing},
                 {"metrics", h.metrics}, {"clones", h.clones}, {"clone_count", h.clone_count}};
  r["state"] = state_name(ch.state);
  r["members"] = json::array();
  for (const ChannelMember& m : ch.members) {
    r["members"].push_back({{"id", m.who.id}, {"bundle", m.who.bundle}, {"bundle_id", id_json(m.bundle_id)}});
  }
  return r;
}

Channel channel_from_record(const json& r) {
  if (r.at("version").get<int>() != kRecordVersion) {
    throw std::runtime_error("written by another version of hostchanfs");
  }
  Channel ch;
  r.get_to(ch.spec);
  r.at("owner_id").get_to(ch.owner_id);
  if (!r.at("owner_pid").is_null()) ch.owner_pid = r["owner_pid"].get<pid_t>();
  r.at("uid").get_to(ch.uid);
  r.at("gid").get_to(ch.gid);
  r.at("max_inodes").get_to(ch.max_inodes);
  auto charge = fs::parse_charge(r.value("charge", "channel"));
  if (!charge) throw std::runtime_error("its charge is not channel or writer");
  ch.charge = *charge;
  for (const json& d : r.at("made_dirs")) {
    ch.made_dirs.push_back({d.at("path").get<std::string>(), id_from(d.at("id"))});
  }
  const json& m = r.at("mount");
  ch.mount = {m.at("unique_id").get<std::uint64_t>(), m.at("id").get<std::uint32_t>(),
              m.at("dev").get<dev_t>()};
  ch.meta_id = id_from(r.at("memory").at("meta"));
  ch.data_id = id_from(r.at("memory").at("data"));
  ch.session_id = id_from(r.at("memory").at("session"));
  r.at("keeper_pid").get_to(ch.keeper_pid);
  const json& h = r.at("holder");
  ch.holder = {h.at("pid").get<pid_t>(), h.at("fuse").get<int>(), h.at("meta").get<int>(),
               h.at("data").get<int>(), h.at("session").get<int>(), h.value("backing", -1),
               h.value("metrics", -1), h.value("clones", -1), h.value("clone_count", 0)};
  ch.state = r.at("state") == "running" ? ChannelState::kRunning : ChannelState::kFailed;
  // Optional: records from before members were kept have none.
  if (auto members = r.find("members"); members != r.end()) {
    for (const json& member : *members) {
      ch.members.push_back({{member.at("id").get<std::string>(), member.at("bundle").get<std::string>()},
                            id_from(member.at("bundle_id"))});
    }
  }
  return ch;
}

bool registry_has_channels(const std::string& run_dir) {
  auto dir = RunDir::open(run_dir, false);
  auto registry = dir ? dir.value().open_registry(false) : Expected<UniqueFd>(dir.error());
  if (!registry) return false;
  std::unique_ptr<DIR, int (*)(DIR*)> d(::fdopendir(registry.value().release()), ::closedir);
  while (dirent* e = d ? ::readdir(d.get()) : nullptr) {
    std::string name = e->d_name;
    if (name.size() > 5 && name.ends_with(".json")) return true;
  }
  return false;
}

Expected<Registry> Registry::open(const RunDir& run_dir) {
  HC_TRY(dir, run_dir.open_registry(true));
  return Registry(run_dir.file_path(kRegistryName), std::move(dir));
}

void Registry::save(const Channel& ch) const {
  auto log = log::get("controller");
  std::string name = record_name(ch.spec.host_path);
  std::string tmp = name + ".tmp";
  std::string text = channel_record(ch).dump(2, ' ', false, json::error_handler_t::replace) + "\n";
  UniqueFd fd(::openat(dir_.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd || ::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    log->error("channel {}: cannot write its record {}/{}: {}", ch.spec.host_path, path_, tmp,
               errno_text(last_errc()));
    return;
  }
  // rename: a reader (or a restarted controller) sees the old record or the new one.
  if (::renameat(dir_.get(), tmp.c_str(), dir_.get(), name.c_str()) < 0) {
    log->error("channel {}: cannot write its record {}/{}: {}", ch.spec.host_path, path_, name,
               errno_text(last_errc()));
  }
}

void Registry::forget(const std::string& host_path) const {
  ::unlinkat(dir_.get(), record_name(host_path).c_str(), 0);
}

std::vector<Channel> Registry::load() const {
  auto log = log::get("controller");
  std::vector<Channel> channels;
  std::unique_ptr<DIR, int (*)(DIR*)> d(::fdopendir(::fcntl(dir_.get(), F_DUPFD_CLOEXEC, 0)), ::closedir);
  if (!d) return channels;
  ::rewinddir(d.get());
  while (dirent* e = ::readdir(d.get())) {
    std::string name = e->d_name;
    if (name.size() <= 5 || !name.ends_with(".json")) continue;
    try {
      UniqueFd fd(::openat(dir_.get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
      struct stat st {};
      if (!fd || ::fstat(fd.get(), &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
          static_cast<std::size_t>(st.st_size) > kMaxRecordBytes) {
        log->error("registry: ignoring {}/{}: not a plain file of at most 1 MiB", path_, name);
        continue;
      }
      std::string text(static_cast<std::size_t>(st.st_size), '\0');
      if (::pread(fd.get(), text.data(), text.size(), 0) != st.st_size) {
        log->error("registry: ignoring {}/{}: cannot read it", path_, name);
        continue;
      }
      Channel ch = channel_from_record(json::parse(text));
      if (auto problem = record_problem(ch, name)) {
        log->error("registry: ignoring {}/{}: {}", path_, name, *problem);
        continue;
      }
      ch.state = ChannelState::kFailed;
      if (auto why = adopt(ch)) {
        log->warn("registry: channel {} failed: {}", ch.spec.host_path, *why);
      } else {
        log->info("registry: channel {} adopted, keeper pid {}", ch.spec.host_path, ch.keeper_pid);
      }
      if (ch.owner_pid) {
        auto owner = open_pidfd(*ch.owner_pid);
        if (owner) ch.owner_pidfd = std::move(owner).value();
      }
      channels.push_back(std::move(ch));
    } catch (const std::exception& ex) {
      log->error("registry: ignoring {}/{}: {}", path_, name, ex.what());
    }
  }
  return channels;
}

}  // namespace hostchanfs::mountctl
