// The controller's wire protocol: JSON lines over its Unix socket, one request per line,
// one answer per line. Both sides speak it through the typed requests and answers below
// (the client encodes a request and decodes its answer; the controller decodes the request
// and encodes the answer):
//   {"op":"create","spec":{...},"uid":0,"gid":0,"max_inodes":0,"charge":"channel",
//    "owner":{"id":"..","pid":1},"member":{"id":"oci:<container>","bundle":"/dir"}}
//    ("charge" may be left out: channel; "member" is optional)
//        -> {"ok":true,"existed":false,"channel":{...}}
//   {"op":"leave","host_path":"/x","owner_id":"pod:..","member_id":"oci:.."}
//        -> {"ok":true,"outcome":"removed|left|kept|no_channel|not_ours"}
//   {"op":"expose","host_path":"/x","pid":123,"rootfs":"/"}   -> {"ok":true}
//   {"op":"remove","host_path":"/x"}                            -> {"ok":true}
//   {"op":"list"}                                               -> {"ok":true,"channels":[...]}
//   {"op":"metrics"}                            -> {"ok":true,"text":"<Prometheus text format>"}
//   {"op":"ping"}                                               -> {"ok":true,"pid":123}
// Failures: {"ok":false,"kind":"bad_input|refused|not_found|failure","message":".."}
// Whatever a request line holds, its answer is one line of valid JSON: bytes that are not
// UTF-8 are refused (parse_request), never echoed, and strings that become paths or names
// must be UTF-8 without control characters (text.hpp).
#pragma once

#include <sys/types.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "fs/charge.hpp"
#include "mountctl/error.hpp"
#include "mountctl/spec.hpp"

namespace hostchanfs::mountctl {

using json = nlohmann::json;

// ---------------------------------------------------------------------------------------
// What a request carries.

struct ChannelOptions {
  std::optional<uid_t> uid;  // owner of the channel root (default 0: container root in
  std::optional<gid_t> gid;  // a userns maps elsewhere, so the hook passes the host ids)
  std::uint64_t max_inodes = 0;  // 0: the store's default for the size
  fs::Charge charge = fs::Charge::kChannel;  // who pays for file data (fs/charge.hpp)
};

// Who a channel belongs to. `id` names it ("run:<pid>", "oci:<container id>", "pod:<sandbox
// id>", "cli:<pid>"): create with the same host path and the same id returns the existing
// channel (idempotent). With `pid`, the controller watches that process (pidfd) and
// removes the channel when it dies (`hostchanfs run` uses this; the OCI hook does not).
struct Owner {
  std::string id;
  std::optional<pid_t> pid;
};

// A container that uses a channel (the OCI hook's): the channel goes when its last member
// has left. A member leaves at its poststop (LeaveRequest), unless it names a `bundle`: an
// engine that calls poststop at every stop (podman) deletes the container's bundle
// directory when it deletes the container, and the member leaves when that directory goes
// (the controller watches it, bundle_watch.hpp).
struct Member {
  std::string id;      // "oci:<container id>"
  std::string bundle;  // absolute; "" for none

  bool operator==(const Member&) const = default;
};

// A channel as the controller reports it.
struct ChannelInfo {
  ChannelSpec spec;
  std::string owner_id;
  uid_t uid = 0;
  gid_t gid = 0;
  std::uint64_t max_inodes = 0;
  fs::Charge charge = fs::Charge::kChannel;
  std::uint64_t bytes_used = 0;   // from the store's own header (writer: the backing tmpfs)
  std::uint64_t inodes_used = 0;  // from the store's own header
  pid_t daemon_pid = 0;           // the `serve` daemon now (0: none recorded)
  pid_t keeper_pid = 0;           // the keeper that restarts it (mountctl/keeper.hpp)
  std::uint64_t restarts = 0;     // daemons started on the connection after the first
  std::string state;              // "running", "failed" (its keeper ended: nothing restarts it)
  std::vector<Member> members;    // the containers that share it (OCI hook), if any
};

// ---------------------------------------------------------------------------------------
// Requests, and the answer each one gets.

struct CreateResult {
  ChannelInfo channel;
  bool existed = false;  // true: the same owner had already created it; nothing was made
};

struct CreateRequest {
  using Answer = CreateResult;
  ChannelSpec spec;
  ChannelOptions options;
  Owner owner;
  // With a member: a channel of the same owner and spec is joined (the member added), so
  // that containers of one pod share one channel (owner "pod:<sandbox id>").
  std::optional<Member> member;
};
struct ExposeRequest {
  using Answer = std::monostate;
  std::string host_path;
  pid_t pid = 0;
  std::string rootfs;
};
struct RemoveRequest {
  using Answer = std::monostate;
  std::string host_path;
};
// The member leaves the channel at `host_path` of `owner_id` (poststop); the channel goes
// when no member is left. A member with a bundle stays (its engine deletes the bundle when
// it deletes the container).
enum class LeaveOutcome { kRemoved, kLeft, kKept, kNoChannel, kNotOurs };
struct LeaveRequest {
  using Answer = LeaveOutcome;
  std::string host_path;
  std::string owner_id;
  std::string member_id;
};
struct ListRequest {
  using Answer = std::vector<ChannelInfo>;
};
struct PingRequest {
  using Answer = pid_t;  // the controller's
};
struct MetricsRequest {
  using Answer = std::string;  // the text exposition (mountctl/metrics.hpp)
};

using Request = std::variant<CreateRequest, ExposeRequest, RemoveRequest, LeaveRequest,
                             ListRequest, PingRequest, MetricsRequest>;

json encode_request(const Request& request);
// kBadInput, with a one-line reason, for an unknown op or a malformed request (a missing
// field, a wrong type, a number out of range, a string that is not a clean name).
Expected<Request> decode_request(const json& request);
// A request line as it came: kBadInput for one that is not UTF-8 or not JSON (the reason
// names the byte offset, never the bytes), else decode_request. Never throws.
Expected<Request> parse_request(std::string_view line);

// {"ok":true,...} with the answer's fields.
json encode_answer(const CreateResult& answer);
json encode_answer(const std::monostate& answer);
json encode_answer(const std::vector<ChannelInfo>& answer);
json encode_answer(pid_t controller_pid);
json encode_answer(LeaveOutcome answer);
json encode_answer(const std::string& metrics_text);
json encode_error(const Error& error);
// One answer as a line ("...\n"): never throws (a string that is not UTF-8, which no answer
// should hold, is written with U+FFFD in its place).
std::string encode_line(const json& answer);

// The answer to a request of type R, or the Error the controller answered with
// (kFailure "the controller answered garbage" when it is not an answer).
template <class R>
Expected<typename R::Answer> decode_answer(const json& answer);

void to_json(json& j, const ChannelSpec& spec);
void from_json(const json& j, ChannelSpec& spec);
void to_json(json& j, const Member& member);
void from_json(const json& j, Member& member);
void to_json(json& j, const ChannelInfo& info);
void from_json(const json& j, ChannelInfo& info);

// ---------------------------------------------------------------------------------------
// Lines on a socket.

// Lines on a socket, for the client (blocking; the controller's side is connection.hpp).

// Send one JSON value as a line (MSG_NOSIGNAL: a vanished peer is an error, not a signal).
// EILSEQ for a value holding a string that is not UTF-8 (nothing is sent).
Result<void> send_line(int fd, const json& value);
// Read one line from `fd` (blocking), keeping any bytes after it in `pending`.
// ECONNRESET when the peer closes before a full line.
Result<std::string> read_line(int fd, std::string& pending);

}  // namespace hostchanfs::mountctl
