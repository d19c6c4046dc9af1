// The controller's wire protocol: JSON lines over its Unix socket. One request per line,
// one answer per line:
//   {"op":"create","spec":{...},"uid":0,"gid":0,"max_inodes":0,"owner":{"id":"..","pid":1}}
//   {"op":"expose","host_path":"/x","pid":123,"rootfs":"/"}
//   {"op":"remove","host_path":"/x"}
//   {"op":"list"}      {"op":"ping"}
// Answers: {"ok":true,...} or {"ok":false,"kind":"bad_input|not_found|failure","message":".."}
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "mountctl/client.hpp"

namespace hostchanfs::mountctl {

using json = nlohmann::json;

void to_json(json& j, const ChannelSpec& spec);
void from_json(const json& j, ChannelSpec& spec);
void to_json(json& j, const ChannelInfo& info);
void from_json(const json& j, ChannelInfo& info);

json error_answer(const Error& error);
// The Error carried by an answer with "ok": false.
Error answer_error(const json& answer);

// The socket of the controller of `run_dir`.
std::string socket_path(const std::string& run_dir);
std::string lock_path(const std::string& run_dir);
std::string pid_path(const std::string& run_dir);
std::string log_path(const std::string& run_dir);
std::string registry_dir(const std::string& run_dir);

// Send one JSON value as a line (MSG_NOSIGNAL: a vanished peer is an error, not a signal).
Result<void> send_line(int fd, const json& value);
// Read one line from `fd` (blocking), keeping any bytes after it in `pending`.
// ECONNRESET when the peer closes before a full line.
Result<std::string> read_line(int fd, std::string& pending);
// The complete lines already in `pending` plus what one read() returns (non-blocking use
// by the controller's event loop). EOF is reported as `closed`.
struct LineBatch {
  std::vector<std::string> lines;
  bool closed = false;
};
Result<LineBatch> read_available_lines(int fd, std::string& pending);

}  // namespace hostchanfs::mountctl
