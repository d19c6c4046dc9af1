// parse_size: byte counts as people write them ("4096", "64k", "32M", "32mb", "1G").
// Shared by `hostchanfs serve --size` and channel specs, so both accept the same text.
#pragma once

#include <cstdint>
#include <limits>
#include <string_view>
#include <system_error>

#include "sys/result.hpp"

namespace hostchanfs {

// Digits, then an optional unit: k, m or g (powers of 1024), with or without a trailing
// b, any case; a bare "b" means bytes. EINVAL for anything else (empty, sign, spaces,
// fractions), ERANGE when the value does not fit in 64 bits.
inline Result<std::uint64_t> parse_size(std::string_view text) noexcept {
  std::uint64_t value = 0;
  std::size_t i = 0;
  constexpr auto kMax = std::numeric_limits<std::uint64_t>::max();
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    auto digit = static_cast<std::uint64_t>(text[i] - '0');
    if (value > (kMax - digit) / 10) return std::errc::result_out_of_range;
    value = value * 10 + digit;
  }
  if (i == 0) return std::errc::invalid_argument;

  auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
  std::string_view unit = text.substr(i);
  unsigned shift = 0;
  if (!unit.empty()) {
    switch (lower(unit.front())) {
      case 'k': shift = 10; unit.remove_prefix(1); break;
      case 'm': shift = 20; unit.remove_prefix(1); break;
      case 'g': shift = 30; unit.remove_prefix(1); break;
      default: break;
    }
  }
  if (!unit.empty() && lower(unit.front()) == 'b') unit.remove_prefix(1);
  if (!unit.empty()) return std::errc::invalid_argument;
  if (shift != 0 && value > (kMax >> shift)) return std::errc::result_out_of_range;
  return value << shift;
}

}  // namespace hostchanfs
