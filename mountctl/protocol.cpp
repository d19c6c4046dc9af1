#include "mountctl/protocol.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace hostchanfs::mountctl {

void to_json(json& j, const ChannelSpec& spec) {
  j = json{{"host_path", spec.host_path},
           {"container_path", spec.container_path},
           {"read_only", spec.read_only},
           {"size_bytes", spec.size_bytes}};
}

void from_json(const json& j, ChannelSpec& spec) {
  j.at("host_path").get_to(spec.host_path);
  j.at("container_path").get_to(spec.container_path);
  j.at("read_only").get_to(spec.read_only);
  j.at("size_bytes").get_to(spec.size_bytes);
}

void to_json(json& j, const ChannelInfo& info) {
  j = json(info.spec);
  j["owner_id"] = info.owner_id;
  j["uid"] = info.uid;
  j["gid"] = info.gid;
  j["max_inodes"] = info.max_inodes;
  j["bytes_used"] = info.bytes_used;
  j["inodes_used"] = info.inodes_used;
  j["daemon_pid"] = info.daemon_pid;
  j["state"] = info.state;
}

void from_json(const json& j, ChannelInfo& info) {
  j.get_to(info.spec);
  j.at("owner_id").get_to(info.owner_id);
  j.at("uid").get_to(info.uid);
  j.at("gid").get_to(info.gid);
  j.at("max_inodes").get_to(info.max_inodes);
  j.at("bytes_used").get_to(info.bytes_used);
  j.at("inodes_used").get_to(info.inodes_used);
  j.at("daemon_pid").get_to(info.daemon_pid);
  j.at("state").get_to(info.state);
}

json error_answer(const Error& error) {
  const char* kind = "failure";
  if (error.kind == Error::Kind::kBadInput) kind = "bad_input";
  if (error.kind == Error::Kind::kNotFound) kind = "not_found";
  return json{{"ok", false}, {"kind", kind}, {"message", error.message}};
}

Error answer_error(const json& answer) {
  std::string kind = answer.value("kind", "failure");
  std::string message = answer.value("message", "the controller gave no reason");
  if (kind == "bad_input") return Error::bad_input(std::move(message));
  if (kind == "not_found") return Error::not_found(std::move(message));
  return Error::failure(std::move(message));
}

std::string socket_path(const std::string& run_dir) { return run_dir + "/controller.sock"; }
std::string lock_path(const std::string& run_dir) { return run_dir + "/controller.lock"; }
std::string pid_path(const std::string& run_dir) { return run_dir + "/controller.pid"; }
std::string log_path(const std::string& run_dir) { return run_dir + "/controller.log"; }
std::string registry_dir(const std::string& run_dir) { return run_dir + "/channels"; }

Result<void> send_line(int fd, const json& value) {
  std::string line = value.dump() + "\n";
  std::size_t sent = 0;
  while (sent < line.size()) {
    ssize_t n = ::send(fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return last_errc();
    }
    sent += static_cast<std::size_t>(n);
  }
  return success();
}

Result<std::string> read_line(int fd, std::string& pending) {
  for (;;) {
    if (auto nl = pending.find('\n'); nl != std::string::npos) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      return line;
    }
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return last_errc();
    }
    if (n == 0) return std::errc::connection_reset;
    pending.append(buf, static_cast<std::size_t>(n));
  }
}

Result<LineBatch> read_available_lines(int fd, std::string& pending) {
  LineBatch batch;
  char buf[4096];
  ssize_t n = ::read(fd, buf, sizeof buf);
  if (n < 0) {
    if (errno != EAGAIN && errno != EINTR) return last_errc();
  } else if (n == 0) {
    batch.closed = true;
  } else {
    pending.append(buf, static_cast<std::size_t>(n));
  }
  std::size_t nl;
  while ((nl = pending.find('\n')) != std::string::npos) {
    batch.lines.push_back(pending.substr(0, nl));
    pending.erase(0, nl + 1);
  }
  return batch;
}

}  // namespace hostchanfs::mountctl
