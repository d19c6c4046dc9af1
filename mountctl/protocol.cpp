#include "mountctl/protocol.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

namespace hostchanfs::mountctl {

namespace {

json optional_json(const auto& value) { return value ? json(*value) : json(nullptr); }

template <class T>
void read_optional(const json& j, const char* key, std::optional<T>& out) {
  if (j.contains(key) && !j[key].is_null()) out = j[key].get<T>();
}

// The wire names of the error kinds. kAlreadyRunning never crosses the wire: it goes as a
// failure.
constexpr std::pair<Error::Kind, const char*> kKindNames[] = {
    {Error::Kind::kBadInput, "bad_input"},
    {Error::Kind::kRefused, "refused"},
    {Error::Kind::kNotFound, "not_found"},
    {Error::Kind::kFailure, "failure"},
};

json ok(json fields = json::object()) {
  fields["ok"] = true;
  return fields;
}

}  // namespace

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

// ---------------------------------------------------------------------------------------

json encode_request(const Request& request) {
  struct Encode {
    json operator()(const CreateRequest& r) const {
      json j{{"op", "create"}, {"spec", r.spec}, {"max_inodes", r.options.max_inodes}};
      j["uid"] = optional_json(r.options.uid);
      j["gid"] = optional_json(r.options.gid);
      j["owner"] = {{"id", r.owner.id}, {"pid", optional_json(r.owner.pid)}};
      return j;
    }
    json operator()(const ExposeRequest& r) const {
      return json{{"op", "expose"}, {"host_path", r.host_path}, {"pid", r.pid}, {"rootfs", r.rootfs}};
    }
    json operator()(const RemoveRequest& r) const {
      return json{{"op", "remove"}, {"host_path", r.host_path}};
    }
    json operator()(const ListRequest&) const { return json{{"op", "list"}}; }
    json operator()(const PingRequest&) const { return json{{"op", "ping"}}; }
  };
  return std::visit(Encode{}, request);
}

Expected<Request> decode_request(const json& request) {
  std::string op = request.at("op").get<std::string>();
  if (op == "create") {
    CreateRequest r;
    request.at("spec").get_to(r.spec);
    read_optional(request, "uid", r.options.uid);
    read_optional(request, "gid", r.options.gid);
    r.options.max_inodes = request.value("max_inodes", std::uint64_t{0});
    const json& owner = request.at("owner");
    owner.at("id").get_to(r.owner.id);
    read_optional(owner, "pid", r.owner.pid);
    return Request(std::move(r));
  }
  if (op == "expose") {
    ExposeRequest r;
    request.at("host_path").get_to(r.host_path);
    request.at("pid").get_to(r.pid);
    request.at("rootfs").get_to(r.rootfs);
    return Request(std::move(r));
  }
  if (op == "remove") return Request(RemoveRequest{request.at("host_path").get<std::string>()});
  if (op == "list") return Request(ListRequest{});
  if (op == "ping") return Request(PingRequest{});
  return Error::bad_input(fmt::format("unknown request \"{}\"", op));
}

// ---------------------------------------------------------------------------------------

json encode_answer(const CreateResult& answer) {
  return ok({{"existed", answer.existed}, {"channel", answer.channel}});
}
json encode_answer(const std::monostate&) { return ok(); }
json encode_answer(const std::vector<ChannelInfo>& answer) { return ok({{"channels", answer}}); }
json encode_answer(pid_t controller_pid) { return ok({{"pid", controller_pid}}); }

json encode_error(const Error& error) {
  const char* kind = "failure";
  for (auto [k, name] : kKindNames) {
    if (k == error.kind) kind = name;
  }
  return json{{"ok", false}, {"kind", kind}, {"message", error.message}};
}

namespace {

Error decode_error(const json& answer) {
  std::string kind = answer.value("kind", "failure");
  std::string message = answer.value("message", "the controller gave no reason");
  for (auto [k, name] : kKindNames) {
    if (kind == name) return Error{k, std::move(message)};
  }
  return Error::failure(std::move(message));
}

CreateResult answer_fields(const json& answer, CreateResult*) {
  CreateResult result;
  answer.at("channel").get_to(result.channel);
  result.existed = answer.value("existed", false);
  return result;
}
std::monostate answer_fields(const json&, std::monostate*) { return {}; }
std::vector<ChannelInfo> answer_fields(const json& answer, std::vector<ChannelInfo>*) {
  return answer.at("channels").get<std::vector<ChannelInfo>>();
}
pid_t answer_fields(const json& answer, pid_t*) { return answer.at("pid").get<pid_t>(); }

}  // namespace

template <class R>
Expected<typename R::Answer> decode_answer(const json& answer) {
  using Answer = typename R::Answer;
  try {
    if (!answer.value("ok", false)) return decode_error(answer);
    return answer_fields(answer, static_cast<Answer*>(nullptr));
  } catch (const json::exception& ex) {
    return Error::failure(fmt::format("the controller answered garbage: {}", ex.what()));
  }
}

template Expected<CreateResult> decode_answer<CreateRequest>(const json&);
template Expected<std::monostate> decode_answer<ExposeRequest>(const json&);
template Expected<std::monostate> decode_answer<RemoveRequest>(const json&);
template Expected<std::vector<ChannelInfo>> decode_answer<ListRequest>(const json&);
template Expected<pid_t> decode_answer<PingRequest>(const json&);

// ---------------------------------------------------------------------------------------

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
