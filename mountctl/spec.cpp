#include "mountctl/spec.hpp"

#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "mountctl/text.hpp"
#include "shm/store.hpp"
#include "sys/errno_text.hpp"
#include "sys/size.hpp"

namespace hostchanfs::mountctl {

namespace {

constexpr const char* kFormat = "<host path>:<container path>:<rw|ro>:<size>";

std::vector<std::string_view> split_fields(std::string_view text) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  for (;;) {
    std::size_t colon = text.find(':', start);
    if (colon == std::string_view::npos) {
      fields.push_back(text.substr(start));
      return fields;
    }
    fields.push_back(text.substr(start, colon - start));
    start = colon + 1;
  }
}

// The kernel's own file systems: a directory made there fails at best.
constexpr std::string_view kKernelTrees[] = {"/proc", "/sys"};

Expected<std::string> check_path(std::string_view field, std::string_view value) {
  if (auto problem = text_problem(value)) {
    return Error::bad_input(fmt::format(
        "{} \"{}\" {}: give a path in UTF-8 without control characters", field,
        printable(value), *problem));
  }
  if (value.empty() || value.front() != '/') {
    return Error::bad_input(fmt::format(
        "{} \"{}\" is not an absolute path: give a path that starts with /", field, value));
  }
  std::string cleaned = clean_path(value);
  if (cleaned == "/") {
    return Error::bad_input(fmt::format(
        "{} \"{}\" is the root directory: give a directory below /", field, value));
  }
  return cleaned;
}

Expected<std::string> check_host_path(std::string_view value) {
  HC_TRY(cleaned, check_path("host path", value));
  for (std::string_view tree : kKernelTrees) {
    if (path_is_within(cleaned, tree)) {
      return Error::bad_input(fmt::format(
          "host path \"{}\" is in {}, the kernel's own file system: give a path elsewhere",
          cleaned, tree));
    }
  }
  return cleaned;
}

Expected<std::uint64_t> check_size(std::string_view value, const MemoryInfo& mem) {
  if (value.empty()) return kDefaultChannelSize;
  auto parsed = parse_size(value);
  if (!parsed) {
    return Error::bad_input(fmt::format(
        "size \"{}\" is not a size: give bytes or a number with k, m or g (e.g. 32M)",
        printable(value)));
  }
  std::uint64_t bytes = parsed.value();
  if (bytes < kMinChannelSize) {
    return Error::bad_input(fmt::format(
        "size \"{}\" ({} bytes) is below the minimum of one 4 KiB page ({} bytes)", value,
        bytes, kMinChannelSize));
  }
  // What the channel may hold in memory: its data and, beside it, its metadata region at
  // its bound (Store::meta_region_size, with the default inode limit).
  const std::uint64_t held = bytes + channel_metadata_bytes(bytes);
  if (held > mem.total_bytes / 2) {
    return Error::bad_input(fmt::format(
        "size \"{}\" ({} bytes, {} with its metadata) is above half of the host's memory ({} "
        "bytes)", value, bytes, held, mem.total_bytes / 2));
  }
  if (held > mem.available_bytes) {
    return Error::bad_input(fmt::format(
        "size \"{}\" ({} bytes, {} with its metadata) is above the host's available memory ({} "
        "bytes)", value, bytes, held, mem.available_bytes));
  }
  return bytes;
}

}  // namespace

std::uint64_t channel_metadata_bytes(std::uint64_t size_bytes) {
  const std::uint64_t pages = (size_bytes + kMinChannelSize - 1) / kMinChannelSize;
  return shm::Store::meta_region_size(pages, shm::Store::default_max_inodes(size_bytes));
}

bool path_is_within(std::string_view path, std::string_view dir) {
  if (dir == "/") return true;
  return path == dir || (path.size() > dir.size() && path.substr(0, dir.size()) == dir &&
                         path[dir.size()] == '/');
}

std::string clean_path(std::string_view path) {
  std::vector<std::string_view> parts;
  std::size_t i = 0;
  while (i < path.size()) {
    std::size_t slash = path.find('/', i);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view part = path.substr(i, slash - i);
    i = slash + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  std::string out;
  for (auto part : parts) {
    out += '/';
    out += part;
  }
  return out.empty() ? "/" : out;
}

std::string ChannelSpec::to_string() const {
  return fmt::format("{}:{}:{}:{}", host_path, container_path, read_only ? "ro" : "rw",
                     size_bytes);
}

Result<MemoryInfo> MemoryInfo::read() {
  std::ifstream in("/proc/meminfo");
  if (!in) return std::errc::no_such_file_or_directory;
  MemoryInfo mem;
  bool have_total = false, have_available = false;
  std::string key;
  std::uint64_t kib = 0;
  std::string unit;
  while (in >> key >> kib) {
    std::getline(in, unit);
    if (key == "MemTotal:") mem.total_bytes = kib * 1024, have_total = true;
    if (key == "MemAvailable:") mem.available_bytes = kib * 1024, have_available = true;
  }
  if (!have_total || !have_available) return std::errc::protocol_error;
  return mem;
}

Expected<ChannelSpec> parse_spec(std::string_view text, const MemoryInfo& mem) {
  auto fields = split_fields(text);
  if (fields.size() != 4) {
    return Error::bad_input(fmt::format(
        "bad host channel format \"{}\": want {} (4 fields separated by ':')", printable(text),
        kFormat));
  }
  ChannelSpec spec;
  HC_TRY(host, check_host_path(fields[0]));
  HC_TRY(container, check_path("container path", fields[1]));
  spec.host_path = std::move(host);
  spec.container_path = std::move(container);
  if (fields[2] == "ro") {
    spec.read_only = true;
  } else if (!fields[2].empty() && fields[2] != "rw") {
    return Error::bad_input(fmt::format(
        "mode \"{}\" is neither rw nor ro: give rw, ro, or leave it empty for rw",
        printable(fields[2])));
  }
  HC_TRY(size, check_size(fields[3], mem));
  spec.size_bytes = size;
  return spec;
}

Expected<ChannelSpec> parse_spec(std::string_view text) {
  auto mem = MemoryInfo::read();
  if (!mem) {
    return Error::failure(fmt::format("cannot read /proc/meminfo to check the size: {}",
                                      errno_text(mem.error())));
  }
  return parse_spec(text, mem.value());
}

}  // namespace hostchanfs::mountctl
