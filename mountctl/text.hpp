// Text that comes from outside — a request on the controller's socket, a spec on the
// command line, an annotation — and ends up in paths, JSON, log lines and one-line errors.
// It must be UTF-8 (the JSON encoder refuses anything else) without control characters (a
// newline would split a one-line error or the `ls` table; a NUL would cut a path short).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace hostchanfs::mountctl {

// Whether `text` is well-formed UTF-8 (RFC 3629).
bool is_utf8(std::string_view text);

// Why `text` is not usable as a name ("is not UTF-8 (byte 0xc3 at offset 4)", "holds a
// control character (0x0a at offset 3)"), or nullopt when it is.
std::optional<std::string> text_problem(std::string_view text);

// `text` fit for one line of an error or a log: printable UTF-8 as it is, every other byte
// as \xNN, cut to `max_bytes` (with "...").
std::string printable(std::string_view text, std::size_t max_bytes = 512);

}  // namespace hostchanfs::mountctl
