// Errors for people: one line (what, why, what to do) and a kind that says what happened,
// which decides the exit status. Every mountctl call returns Expected<T>.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "sys/exit_status.hpp"
#include "sys/result.hpp"

namespace hostchanfs::mountctl {

struct Error {
  enum class Kind {
    kBadInput,        // the request was wrong; nothing was changed
    kRefused,         // the controller does not serve this client; nothing was changed
    kNotFound,        // no such thing: a channel that is gone, no controller running
    kAlreadyRunning,  // another controller owns the run dir
    kFailure,         // a system error; what was made was undone
  };
  Kind kind = Kind::kFailure;
  std::string message;  // one line, no trailing newline

  static Error bad_input(std::string msg) { return {Kind::kBadInput, std::move(msg)}; }
  static Error refused(std::string msg) { return {Kind::kRefused, std::move(msg)}; }
  static Error not_found(std::string msg) { return {Kind::kNotFound, std::move(msg)}; }
  static Error already_running(std::string msg) { return {Kind::kAlreadyRunning, std::move(msg)}; }
  static Error failure(std::string msg) { return {Kind::kFailure, std::move(msg)}; }

  // The exit status for this error: kExitUsage when nothing was changed because of what
  // was asked (bad input, a refused client), kExitFailure otherwise.
  int exit_code() const noexcept {
    return kind == Kind::kBadInput || kind == Kind::kRefused ? kExitUsage : kExitFailure;
  }
};

// A value or an Error. Test with `if (!r)`, read r.value() / r.error().message.
template <class T>
using Expected = outcome::result<T, Error, outcome::policy::terminate>;

// Prints the error as one line ("<program>: <message>") and returns its exit status.
inline int report(const Error& error, std::string_view program = "hostchanfs") {
  return print_error(program, error.message, error.exit_code());
}

}  // namespace hostchanfs::mountctl
