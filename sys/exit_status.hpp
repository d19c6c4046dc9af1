// Exit statuses scripts can rely on, and the one way a command tells people why it did
// not do what was asked: one line on stderr, "<program>: <what, why, what to do>".
#pragma once

#include <string_view>

namespace hostchanfs {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the operation failed (a system error)
inline constexpr int kExitUsage = 2;    // refused (bad input): nothing was changed

// Prints "<program>: <message>\n" on stderr; returns exit_status, so that a command can
// `return print_error(...)`.
int print_error(std::string_view program, std::string_view message, int exit_status);

}  // namespace hostchanfs
