#include "mountctl/text.hpp"

#include <cstdint>

#include <fmt/format.h>

namespace hostchanfs::mountctl {

namespace {

constexpr std::size_t kInvalid = 0;

// The length of the well-formed UTF-8 sequence at `at` (RFC 3629: no overlong form, no
// surrogate, nothing above U+10FFFF), kInvalid if there is none; its code point in `cp`.
std::size_t utf8_sequence(std::string_view s, std::size_t at, char32_t& cp) {
  auto byte = [&](std::size_t i) { return static_cast<std::uint8_t>(s[i]); };
  std::uint8_t b0 = byte(at);
  std::size_t len;
  char32_t min;
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  } else if ((b0 & 0xe0) == 0xc0) {
    len = 2, cp = b0 & 0x1f, min = 0x80;
  } else if ((b0 & 0xf0) == 0xe0) {
    len = 3, cp = b0 & 0x0f, min = 0x800;
  } else if ((b0 & 0xf8) == 0xf0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return kInvalid;
  }
  if (at + len > s.size()) return kInvalid;
  for (std::size_t i = 1; i < len; ++i) {
    if ((byte(at + i) & 0xc0) != 0x80) return kInvalid;
    cp = (cp << 6) | (byte(at + i) & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return kInvalid;
  return len;
}

// C0, DEL and C1: the characters a terminal or a line-based reader acts on.
bool is_control(char32_t cp) { return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f); }

}  // namespace

bool is_utf8(std::string_view text) {
  char32_t cp = 0;
  for (std::size_t at = 0, len; at < text.size(); at += len) {
    if ((len = utf8_sequence(text, at, cp)) == kInvalid) return false;
  }
  return true;
}

std::optional<std::string> text_problem(std::string_view text) {
  for (std::size_t at = 0; at < text.size();) {
    char32_t cp = 0;
    std::size_t len = utf8_sequence(text, at, cp);
    if (len == kInvalid) {
      return fmt::format("is not UTF-8 (byte 0x{:02x} at offset {})",
                         static_cast<std::uint8_t>(text[at]), at);
    }
    if (is_control(cp)) {
      return fmt::format("holds a control character (U+{:04X} at offset {})",
                         static_cast<std::uint32_t>(cp), at);
    }
    at += len;
  }
  return std::nullopt;
}

std::string printable(std::string_view text, std::size_t max_bytes) {
  std::string out;
  std::size_t at = 0;
  while (at < text.size() && out.size() < max_bytes) {
    char32_t cp = 0;
    std::size_t len = utf8_sequence(text, at, cp);
    if (len != kInvalid && !is_control(cp) && cp != '\\') {
      out.append(text.substr(at, len));
      at += len;
    } else {
      out += fmt::format("\\x{:02x}", static_cast<std::uint8_t>(text[at]));
      ++at;
    }
  }
  if (at < text.size()) out += "...";
  return out;
}

}  // namespace hostchanfs::mountctl
