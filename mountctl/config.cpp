#include "mountctl/config.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "mountctl/root_owned.hpp"
#include "mountctl/spec.hpp"
#include "mountctl/text.hpp"
#include "sys/dirs.hpp"

namespace hostchanfs::mountctl {

namespace {

constexpr std::size_t kMaxConfigBytes = 64 * 1024;
constexpr const char* kRootKey = "hook_channel_root";

Error bad_config(const std::string& path, const std::string& why) {
  return Error::bad_input(fmt::format("config {} {}: fix it (it must be root's own JSON, e.g. "
                                      "{{\"{}\": \"{}\"}})", path, why, kRootKey,
                                      kDefaultHookChannelRoot));
}

Expected<Config> parse_config(const std::string& path, const std::string& text) {
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return bad_config(path, "is not a JSON object");
  Config config;
  for (const auto& [key, value] : doc.items()) {
    if (key != kRootKey) return bad_config(path, fmt::format("has an unknown key \"{}\"", printable(key)));
    const std::string* root = value.is_string() ? value.get_ptr<const std::string*>() : nullptr;
    if (!root || text_problem(*root) || root->empty() || root->front() != '/' ||
        clean_path(*root) != *root) {
      return bad_config(path, fmt::format("has a {} that is not a clean absolute path", kRootKey));
    }
    config.hook_channel_root = *root;
  }
  return config;
}

}  // namespace

std::string default_config_path() {
  const char* env = std::getenv("HOSTCHANFS_CONFIG");
  return env && *env ? std::string(env) : std::string(kDefaultConfigPath);
}

Expected<Config> read_config(const std::string& path) {
  if (!path_components(path) || path == "/") return bad_config(printable(path), "is not a clean absolute path");
  auto [dir_path, name] = split_parent(path);
  auto dir = walk_dirs(dir_path);
  if (!dir) return bad_config(path, "cannot be read: " + what_is_wrong(dir.error()));
  if (!dir.value().missing.empty()) return Config{};
  if (auto bad = untrusted_directory(dir.value().steps)) {
    return bad_config(path, "is in a directory others can change: " + *bad);
  }
  auto fd = open_root_file(dir.value().dir.get(), name.c_str(), path, O_RDONLY);
  if (!fd) {
    if (fd.error().kind == Error::Kind::kNotFound) return Config{};
    return Error{fd.error().kind, "config: " + fd.error().message};
  }
  std::string text(kMaxConfigBytes + 1, '\0');
  ssize_t n = ::pread(fd.value().get(), text.data(), text.size(), 0);
  if (n < 0 || static_cast<std::size_t>(n) > kMaxConfigBytes) {
    return bad_config(path, "cannot be read, or is over 64 KiB");
  }
  text.resize(static_cast<std::size_t>(n));
  return parse_config(path, text);
}

}  // namespace hostchanfs::mountctl
