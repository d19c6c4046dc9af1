#include "mountctl/protocol.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <limits>
#include <stdexcept>

#include <fmt/format.h>

#include "mountctl/text.hpp"

namespace hostchanfs::mountctl {

namespace {

json optional_json(const auto& value) { return value ? json(*value) : json(nullptr); }

// The wire names of the error kinds. kAlreadyRunning never crosses the wire: it goes as a
// failure.
constexpr std::pair<LeaveOutcome, const char*> kLeaveNames[] = {
    {LeaveOutcome::kRemoved, "removed"},     {LeaveOutcome::kLeft, "left"},
    {LeaveOutcome::kKept, "kept"},           {LeaveOutcome::kNoChannel, "no_channel"},
    {LeaveOutcome::kNotOurs, "not_ours"},
};

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

void to_json(json& j, const Member& member) {
  j = json{{"id", member.id}, {"bundle", member.bundle}};
}

void from_json(const json& j, Member& member) {
  j.at("id").get_to(member.id);
  j.at("bundle").get_to(member.bundle);
}

void to_json(json& j, const ChannelInfo& info) {
  j = json(info.spec);
  j["owner_id"] = info.owner_id;
  j["uid"] = info.uid;
  j["gid"] = info.gid;
  j["max_inodes"] = info.max_inodes;
  j["charge"] = fs::charge_name(info.charge);
  j["bytes_used"] = info.bytes_used;
  j["inodes_used"] = info.inodes_used;
  j["daemon_pid"] = info.daemon_pid;
  j["keeper_pid"] = info.keeper_pid;
  j["restarts"] = info.restarts;
  j["state"] = info.state;
  j["members"] = info.members;
}

void from_json(const json& j, ChannelInfo& info) {
  j.get_to(info.spec);
  j.at("owner_id").get_to(info.owner_id);
  j.at("uid").get_to(info.uid);
  j.at("gid").get_to(info.gid);
  j.at("max_inodes").get_to(info.max_inodes);
  info.charge = fs::parse_charge(j.value("charge", "channel")).value_or(fs::Charge::kChannel);
  j.at("bytes_used").get_to(info.bytes_used);
  j.at("inodes_used").get_to(info.inodes_used);
  j.at("daemon_pid").get_to(info.daemon_pid);
  j.at("keeper_pid").get_to(info.keeper_pid);
  j.at("restarts").get_to(info.restarts);
  j.at("state").get_to(info.state);
  if (auto m = j.find("members"); m != j.end()) m->get_to(info.members);
}

// ---------------------------------------------------------------------------------------

json encode_request(const Request& request) {
  struct Encode {
    json operator()(const CreateRequest& r) const {
      json j{{"op", "create"}, {"spec", r.spec}, {"max_inodes", r.options.max_inodes},
             {"charge", fs::charge_name(r.options.charge)}};
      j["uid"] = optional_json(r.options.uid);
      j["gid"] = optional_json(r.options.gid);
      j["owner"] = {{"id", r.owner.id}, {"pid", optional_json(r.owner.pid)}};
      if (r.member) j["member"] = *r.member;
      return j;
    }
    json operator()(const ExposeRequest& r) const {
      return json{{"op", "expose"}, {"host_path", r.host_path}, {"pid", r.pid}, {"rootfs", r.rootfs}};
    }
    json operator()(const RemoveRequest& r) const {
      return json{{"op", "remove"}, {"host_path", r.host_path}};
    }
    json operator()(const LeaveRequest& r) const {
      return json{{"op", "leave"}, {"host_path", r.host_path}, {"owner_id", r.owner_id},
                  {"member_id", r.member_id}};
    }
    json operator()(const ListRequest&) const { return json{{"op", "list"}}; }
    json operator()(const PingRequest&) const { return json{{"op", "ping"}}; }
    json operator()(const MetricsRequest&) const { return json{{"op", "metrics"}}; }
  };
  return std::visit(Encode{}, request);
}

namespace {

// A request that does not say what it must: thrown inside decode_request only.
struct BadField : std::runtime_error {
  using std::runtime_error::runtime_error;
};

const json& field(const json& object, const char* key) {
  if (!object.is_object()) throw BadField("not a JSON object");
  auto it = object.find(key);
  if (it == object.end()) throw BadField(fmt::format("no \"{}\"", key));
  return *it;
}

// A string that becomes a path or a name: UTF-8 without control characters.
std::string text_at(const json& object, const char* key) {
  const json& value = field(object, key);
  if (!value.is_string()) throw BadField(fmt::format("\"{}\" is not a string", key));
  const std::string& text = value.get_ref<const std::string&>();
  if (auto problem = text_problem(text)) throw BadField(fmt::format("\"{}\" {}", key, *problem));
  return text;
}

template <class T>
T integer_at(const json& object, const char* key) {
  const json& value = field(object, key);
  bool fits = value.is_number_unsigned()
                  ? value.get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<T>::max())
                  : value.is_number_integer() && value.get<std::int64_t>() >= 0 &&
                        static_cast<std::uint64_t>(value.get<std::int64_t>()) <=
                            static_cast<std::uint64_t>(std::numeric_limits<T>::max());
  if (!fits) throw BadField(fmt::format("\"{}\" is not a number from 0 to {}", key, std::numeric_limits<T>::max()));
  return value.get<T>();
}

template <class T>
std::optional<T> optional_integer_at(const json& object, const char* key) {
  if (!object.is_object() || !object.contains(key) || object[key].is_null()) return std::nullopt;
  return integer_at<T>(object, key);
}

bool bool_at(const json& object, const char* key) {
  const json& value = field(object, key);
  if (!value.is_boolean()) throw BadField(fmt::format("\"{}\" is not true or false", key));
  return value.get<bool>();
}

Request decode_fields(const json& request) {
  std::string op = text_at(request, "op");
  if (op == "create") {
    CreateRequest r;
    const json& spec = field(request, "spec");
    r.spec.host_path = text_at(spec, "host_path");
    r.spec.container_path = text_at(spec, "container_path");
    r.spec.read_only = bool_at(spec, "read_only");
    r.spec.size_bytes = integer_at<std::uint64_t>(spec, "size_bytes");
    r.options.uid = optional_integer_at<uid_t>(request, "uid");
    r.options.gid = optional_integer_at<gid_t>(request, "gid");
    r.options.max_inodes = optional_integer_at<std::uint64_t>(request, "max_inodes").value_or(0);
    if (request.contains("charge")) {
      auto charge = fs::parse_charge(text_at(request, "charge"));
      if (!charge) throw BadField("\"charge\" is not channel or writer");
      r.options.charge = *charge;
    }
    const json& owner = field(request, "owner");
    r.owner.id = text_at(owner, "id");
    r.owner.pid = optional_integer_at<pid_t>(owner, "pid");
    if (request.contains("member") && !request["member"].is_null()) {
      const json& member = field(request, "member");
      r.member = Member{text_at(member, "id"), text_at(member, "bundle")};
      if (!r.member->bundle.empty() && r.member->bundle.front() != '/') {
        throw BadField("\"bundle\" is not an absolute path");
      }
    }
    return r;
  }
  if (op == "expose") {
    return ExposeRequest{text_at(request, "host_path"), integer_at<pid_t>(request, "pid"),
                         text_at(request, "rootfs")};
  }
  if (op == "remove") return RemoveRequest{text_at(request, "host_path")};
  if (op == "leave") {
    return LeaveRequest{text_at(request, "host_path"), text_at(request, "owner_id"),
                        text_at(request, "member_id")};
  }
  if (op == "list") return ListRequest{};
  if (op == "ping") return PingRequest{};
  if (op == "metrics") return MetricsRequest{};
  throw BadField(fmt::format("unknown op \"{}\" (want create, expose, remove, leave, list, ping or metrics)",
                             printable(op, 64)));
}

}  // namespace

Expected<Request> decode_request(const json& request) {
  try {
    return decode_fields(request);
  } catch (const BadField& e) {
    return Error::bad_input(fmt::format("bad request: {}", e.what()));
  } catch (const json::exception& e) {
    return Error::bad_input(fmt::format("bad request: {}", e.what()));
  }
}

Expected<Request> parse_request(std::string_view line) {
  if (!is_utf8(line)) return Error::bad_input("bad request: not UTF-8");
  json request;
  try {
    request = json::parse(line);
  } catch (const json::parse_error& e) {
    return Error::bad_input(fmt::format("bad request: not JSON (error at byte {})", e.byte));
  } catch (const json::exception&) {
    return Error::bad_input("bad request: not JSON");
  }
  return decode_request(request);
}

// ---------------------------------------------------------------------------------------

json encode_answer(const CreateResult& answer) {
  return ok({{"existed", answer.existed}, {"channel", answer.channel}});
}
json encode_answer(const std::monostate&) { return ok(); }
json encode_answer(const std::vector<ChannelInfo>& answer) { return ok({{"channels", answer}}); }
json encode_answer(pid_t controller_pid) { return ok({{"pid", controller_pid}}); }
json encode_answer(const std::string& metrics_text) { return ok({{"text", metrics_text}}); }
json encode_answer(LeaveOutcome answer) {
  for (auto [outcome, name] : kLeaveNames) {
    if (outcome == answer) return ok({{"outcome", name}});
  }
  return ok();
}

json encode_error(const Error& error) {
  const char* kind = "failure";
  for (auto [k, name] : kKindNames) {
    if (k == error.kind) kind = name;
  }
  return json{{"ok", false}, {"kind", kind}, {"message", error.message}};
}

std::string encode_line(const json& answer) {
  return answer.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

namespace {

Error decode_error(const json& answer) {
  std::string kind = answer.value("kind", "failure");
  // One line whatever the controller said.
  std::string message = printable(answer.value("message", "the controller gave no reason"));
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
std::string answer_fields(const json& answer, std::string*) { return answer.at("text").get<std::string>(); }
LeaveOutcome answer_fields(const json& answer, LeaveOutcome*) {
  std::string outcome = answer.at("outcome").get<std::string>();
  for (auto [value, name] : kLeaveNames) {
    if (outcome == name) return value;
  }
  throw json::other_error::create(501, "unknown leave outcome \"" + outcome + "\"", &answer);
}

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
template Expected<LeaveOutcome> decode_answer<LeaveRequest>(const json&);
template Expected<std::string> decode_answer<MetricsRequest>(const json&);
template Expected<pid_t> decode_answer<PingRequest>(const json&);

// ---------------------------------------------------------------------------------------

Result<void> send_line(int fd, const json& value) {
  std::string line;
  try {
    line = value.dump() + "\n";
  } catch (const json::type_error&) {
    return std::errc::illegal_byte_sequence;
  }
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
  std::size_t scanned = 0;  // bytes of `pending` known to hold no newline
  for (;;) {
    if (auto nl = pending.find('\n', scanned); nl != std::string::npos) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      return line;
    }
    scanned = pending.size();
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

}  // namespace hostchanfs::mountctl
