#include "mountctl/commands.hpp"

#include <unistd.h>

#include <cstdio>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "mountctl/client.hpp"
#include "mountctl/controller.hpp"
#include "mountctl/metrics.hpp"
#include "mountctl/text.hpp"

namespace hostchanfs::mountctl {

namespace {

std::string human_bytes(std::uint64_t bytes) {
  const char* units[] = {"B", "K", "M", "G", "T"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  if (unit == 0) return fmt::format("{}B", bytes);
  return fmt::format("{:.1f}{}", value, units[unit]);
}

// A field of a CSV record as Go's encoding/csv writes it (what podman and docker read
// `--mount` with): quoted when it holds a comma or a quote, a quote doubled inside.
std::string csv_field(const std::string& field) {
  if (field.find_first_of(",\"\r\n") == std::string::npos) return field;
  std::string out = "\"";
  for (char c : field) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// One word for a POSIX shell: as it is when nothing in it is special, else single-quoted.
std::string shell_word(const std::string& word) {
  if (!word.empty() && word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                              "0123456789@%+=:,./_-") == std::string::npos) {
    return word;
  }
  std::string out = "'";
  for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// What to hand to an engine: a `--mount` flag and the OCI config.json `mounts` entry.
void print_engine_mounts(const ChannelSpec& spec) {
  std::printf("%s\n", mount_flag(spec).c_str());
  json entry{{"destination", spec.container_path},
             {"type", "bind"},
             {"source", spec.host_path},
             {"options", {"rbind", "rprivate", "nosuid", "nodev", "noexec",
                          spec.read_only ? "ro" : "rw"}}};
  std::printf("%s\n", entry.dump().c_str());
}

void print_table(const std::vector<ChannelInfo>& channels) {
  std::printf("%-24s %-20s %-4s %-7s %8s %8s %15s %8s %8s %s\n", "HOST PATH", "CONTAINER PATH", "MODE",
              "CHARGE", "QUOTA", "USED", "INODES", "DAEMON", "RESTARTS", "STATE");
  for (const auto& c : channels) {
    std::string inodes = fmt::format("{}/{}", c.inodes_used, c.max_inodes);
    std::printf("%-24s %-20s %-4s %-7s %8s %8s %15s %8d %8llu %s\n", c.spec.host_path.c_str(),
                c.spec.container_path.c_str(), c.spec.read_only ? "ro" : "rw",
                std::string(fs::charge_name(c.charge)).c_str(),
                human_bytes(c.spec.size_bytes).c_str(), human_bytes(c.bytes_used).c_str(),
                inodes.c_str(), c.daemon_pid, static_cast<unsigned long long>(c.restarts),
                c.state.c_str());
  }
}

}  // namespace

std::string mount_flag(const ChannelSpec& spec) {
  std::string value = "type=bind";
  for (const std::string& field : {"src=" + spec.host_path, "dst=" + spec.container_path,
                                   std::string(spec.read_only ? "ro=true" : "ro=false")}) {
    value += "," + csv_field(field);
  }
  return "--mount " + shell_word(value);
}

int mount_main(const MountRequest& request) {
  auto spec = parse_spec(request.spec);
  if (!spec) return report(spec.error());
  auto client = ControllerClient::connect(request.run_dir);
  if (!client) return report(client.error());
  // A per-invocation owner: `mount` of a path that is already a channel is refused.
  auto created = client.value().create(spec.value(), request.options,
                                       Owner{fmt::format("cli:{}", ::getpid()), std::nullopt});
  if (!created) return report(created.error());
  print_engine_mounts(spec.value());
  return kExitOk;
}

int umount_main(const UmountRequest& request) {
  const std::string& host = request.host_path;
  if (auto problem = text_problem(host)) {
    return report(Error::bad_input(fmt::format(
        "host path \"{}\" {}: give the channel's host path as `hostchanfs ls` shows it",
        printable(host), *problem)));
  }
  if (host.empty() || host.front() != '/') {
    return report(Error::bad_input(fmt::format(
        "host path \"{}\" is not an absolute path: give the channel's host path as "
        "`hostchanfs ls` shows it", host)));
  }
  auto client = ControllerClient::connect_if_channels(request.run_dir);
  if (!client) {
    if (client.error().kind == Error::Kind::kNotFound) {
      return report(Error::bad_input(fmt::format("no channel at {}", clean_path(host))));
    }
    return report(client.error());
  }
  auto removed = client.value().remove(clean_path(host));
  if (!removed) {
    // No such channel is what the user asked wrongly, not a failure.
    Error e = removed.error();
    if (e.kind == Error::Kind::kNotFound) e.kind = Error::Kind::kBadInput;
    return report(e);
  }
  return kExitOk;
}

// The answer of the controller of `run_dir` to `ask`, or nullopt when none runs and no
// channel is left for one to take over: ls and metrics start no controller.
template <class T>
Expected<std::optional<T>> ask_running_controller(const std::string& run_dir,
                                                  Expected<T> (ControllerClient::*ask)()) {
  auto client = ControllerClient::connect_if_channels(run_dir);
  if (!client) {
    if (client.error().kind == Error::Kind::kNotFound) return std::optional<T>();
    return client.error();
  }
  HC_TRY(answer, (client.value().*ask)());
  return std::optional<T>(std::move(answer));
}

int ls_main(const LsRequest& request) {
  auto listed = ask_running_controller(request.run_dir, &ControllerClient::list);
  if (!listed) return report(listed.error());
  std::vector<ChannelInfo> channels = std::move(listed).value().value_or(std::vector<ChannelInfo>{});
  if (request.json) {
    std::printf("%s\n", json(channels).dump(2).c_str());
  } else {
    print_table(channels);
  }
  return kExitOk;
}

int controller_main(const ControllerRequest& request) {
  return run_controller(request.run_dir, ControllerOptions{request.metrics_listen});
}

int metrics_main(const MetricsCommandRequest& request) {
  auto answered = ask_running_controller(request.run_dir, &ControllerClient::metrics);
  if (!answered) return report(answered.error());
  // With no controller, the exposition of no channel (still valid for a scraper).
  std::string text = std::move(answered).value().value_or(metrics_text(MetricsBoard().Collect()));
  std::fwrite(text.data(), 1, text.size(), stdout);
  return kExitOk;
}

}  // namespace hostchanfs::mountctl
