// The channel spec, as iSulad's --host-channel defines it, made exact (DESIGN.md):
// <host path>:<container path>:<rw|ro>:<size>
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "mountctl/error.hpp"
#include "sys/result.hpp"

namespace hostchanfs::mountctl {

inline constexpr std::uint64_t kDefaultChannelSize = 64ull << 20;  // empty size field
inline constexpr std::uint64_t kMinChannelSize = 4096;             // one page

struct ChannelSpec {
  std::string host_path;       // absolute, cleaned
  std::string container_path;  // absolute, cleaned
  bool read_only = false;      // empty mode field means rw
  std::uint64_t size_bytes = kDefaultChannelSize;

  // The canonical text: "/a:/b:rw:33554432".
  std::string to_string() const;
  bool operator==(const ChannelSpec&) const = default;
};

// The memory limits a size is checked against (from /proc/meminfo; tests pass their own).
struct MemoryInfo {
  std::uint64_t total_bytes = 0;
  std::uint64_t available_bytes = 0;
  static Result<MemoryInfo> read();
};

// The metadata region a channel of `size_bytes` may grow to beside its data (the
// store's bound, with the default inode limit).
std::uint64_t channel_metadata_bytes(std::uint64_t size_bytes);

// Syntax, path cleaning and the size limits (min one page; the size with its metadata
// region at most half of MemTotal and not above MemAvailable). Paths must be UTF-8 without control characters (text.hpp), and a
// host path may not be in /proc or /sys. Does NOT look at the host path: whether it
// exists, or holds a symlink, is checked by the controller at create() (so an idempotent
// re-create can succeed).
// Errors are kBadInput with a one-line message naming the field and its value.
Expected<ChannelSpec> parse_spec(std::string_view text);
Expected<ChannelSpec> parse_spec(std::string_view text, const MemoryInfo& mem);

// "//a/./b/" -> "/a/b"; ".." is resolved lexically ("/a/../b" -> "/b"). Only for absolute
// paths (the caller checks that first).
std::string clean_path(std::string_view absolute_path);

// Whether the clean absolute `path` is `dir` or below it (every path is within "/").
bool path_is_within(std::string_view path, std::string_view dir);

}  // namespace hostchanfs::mountctl
