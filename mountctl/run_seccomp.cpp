#include "mountctl/run_seccomp.hpp"

#include <sched.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <map>

#include <fmt/format.h>

#include "sys/errno_text.hpp"
#include "sys/read_file.hpp"

namespace hostchanfs::mountctl {

namespace {

using nlohmann::json;

// uname's machine -> Go's architecture name (what the profile's `arches` say) and the
// libseccomp name of its archMap entry.
struct ArchNames {
  const char* machine;
  const char* go;
  const char* scmp;
};
constexpr ArchNames kArches[] = {
    {"x86_64", "amd64", "SCMP_ARCH_X86_64"},   {"aarch64", "arm64", "SCMP_ARCH_AARCH64"},
    {"i686", "386", "SCMP_ARCH_X86"},          {"i386", "386", "SCMP_ARCH_X86"},
    {"armv7l", "arm", "SCMP_ARCH_ARM"},        {"s390x", "s390x", "SCMP_ARCH_S390X"},
    {"ppc64le", "ppc64le", "SCMP_ARCH_PPC64LE"}, {"riscv64", "riscv64", "SCMP_ARCH_RISCV64"},
    {"mips64", "mips64", "SCMP_ARCH_MIPS64"},  {"loongarch64", "loong64", "SCMP_ARCH_LOONGARCH64"},
};

const char* scmp_arch_of(const std::string& go_arch) {
  for (const auto& a : kArches) {
    if (go_arch == a.go) return a.scmp;
  }
  return nullptr;
}

bool contains(const json& list, const std::string& value) {
  if (!list.is_array()) return false;
  return std::any_of(list.begin(), list.end(),
                     [&](const json& v) { return v.is_string() && v.get<std::string>() == value; });
}

bool has_capability(const SeccompTarget& target, const std::string& cap) {
  return std::find(target.bounding.begin(), target.bounding.end(), cap) != target.bounding.end();
}

// "4.8" -> true when the running kernel is 4.8 or later. A version that does not parse
// counts as met (the profile's authors wrote it for newer kernels than any we refuse).
bool kernel_at_least(const SeccompTarget& target, const json& version) {
  int major = 0, minor = 0;
  if (!version.is_string() || std::sscanf(version.get<std::string>().c_str(), "%d.%d", &major, &minor) < 1) {
    return true;
  }
  return target.kernel_major > major || (target.kernel_major == major && target.kernel_minor >= minor);
}

// One of `includes` / `excludes`: does it hold for the target? `all` says how its caps
// combine: every one (includes) or any one (excludes). An empty filter holds for
// includes and not for excludes.
bool filter_holds(const json& filter, const SeccompTarget& target, bool includes) {
  if (!filter.is_object() || filter.empty()) return includes;
  bool any = false, all = true;
  auto note = [&](bool holds) {
    any = any || holds;
    all = all && holds;
  };
  if (auto arches = filter.find("arches"); arches != filter.end() && !arches->empty()) {
    note(contains(*arches, target.arch));
  }
  if (auto caps = filter.find("caps"); caps != filter.end() && caps->is_array()) {
    for (const json& cap : *caps) note(cap.is_string() && has_capability(target, cap.get<std::string>()));
  }
  if (auto min = filter.find("minKernel"); min != filter.end() && !min->is_null()) {
    note(kernel_at_least(target, *min));
  }
  return includes ? all : any;
}

json syscall_rule(std::vector<std::string> names, const std::string& action,
                  std::optional<unsigned> errno_ret, json args = json()) {
  json rule{{"names", std::move(names)}, {"action", action}};
  if (errno_ret) rule["errnoRet"] = *errno_ret;
  if (args.is_array() && !args.empty()) rule["args"] = std::move(args);
  return rule;
}

// Docker's namespace rule (see the header): takes clone, clone3 and unshare out of every
// rule and adds the refusals.
void refuse_new_namespaces(json& syscalls, const SeccompTarget& target) {
  const std::vector<std::string> taken = {"clone", "clone3", "unshare"};
  for (json& rule : syscalls) {
    json kept = json::array();
    for (const json& name : rule["names"]) {
      if (std::find(taken.begin(), taken.end(), name.get<std::string>()) == taken.end()) {
        kept.push_back(name);
      }
    }
    rule["names"] = std::move(kept);
  }
  syscalls.erase(std::remove_if(syscalls.begin(), syscalls.end(),
                                [](const json& rule) { return rule["names"].empty(); }),
                 syscalls.end());
  // s390's clone takes the flags second.
  unsigned flags_index = target.arch == "s390x" ? 1 : 0;
  auto flags_masked_eq = [&](std::uint64_t mask, std::uint64_t value) {
    return json::array(
        {{{"index", flags_index}, {"value", mask}, {"valueTwo", value}, {"op", "SCMP_CMP_MASKED_EQ"}}});
  };
  const std::uint64_t flags[] = {CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,   CLONE_NEWUSER,
                                 CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP};
  std::uint64_t all = 0;
  for (auto f : flags) all |= f;
  // Allowed with none of them; EPERM (rather than the default action's errno) with any.
  syscalls.push_back(syscall_rule({"clone"}, "SCMP_ACT_ALLOW", std::nullopt, flags_masked_eq(all, 0)));
  for (auto f : flags) {
    syscalls.push_back(syscall_rule({"clone"}, "SCMP_ACT_ERRNO", EPERM, flags_masked_eq(f, f)));
  }
  syscalls.push_back(syscall_rule({"clone3"}, "SCMP_ACT_ERRNO", ENOSYS));
  syscalls.push_back(syscall_rule({"unshare"}, "SCMP_ACT_ERRNO", EPERM));
}

Error not_a_profile(const std::string& why) {
  return Error::bad_input("the seccomp profile is not one in containers/common's format (" + why +
                          "): give podman's default, /usr/share/containers/seccomp.json");
}

}  // namespace

SeccompTarget seccomp_target_here(std::vector<std::string> bounding) {
  SeccompTarget target;
  target.bounding = std::move(bounding);
  utsname u{};
  if (::uname(&u) == 0) {
    for (const auto& a : kArches) {
      if (std::string(u.machine) == a.machine) target.arch = a.go;
    }
    std::sscanf(u.release, "%d.%d", &target.kernel_major, &target.kernel_minor);
  }
  return target;
}

Expected<json> oci_seccomp_from_profile(const json& profile, const SeccompTarget& target) {
  if (!profile.is_object()) return not_a_profile("not a JSON object");
  auto default_action = profile.find("defaultAction");
  if (default_action == profile.end() || !default_action->is_string()) {
    return not_a_profile("no defaultAction");
  }
  json out{{"defaultAction", *default_action}};
  if (auto e = profile.find("defaultErrnoRet"); e != profile.end() && e->is_number_unsigned()) {
    out["defaultErrnoRet"] = *e;
  }
  if (auto f = profile.find("flags"); f != profile.end() && f->is_array() && !f->empty()) {
    out["flags"] = *f;
  }

  auto arches = profile.find("architectures");
  auto arch_map = profile.find("archMap");
  bool has_list = arches != profile.end() && arches->is_array() && !arches->empty();
  bool has_map = arch_map != profile.end() && arch_map->is_array() && !arch_map->empty();
  if (has_list && has_map) return not_a_profile("both architectures and archMap");
  json architectures = json::array();
  if (has_list) architectures = *arches;
  if (has_map) {
    const char* ours = scmp_arch_of(target.arch);
    for (const json& entry : *arch_map) {
      if (!ours || entry.value("architecture", "") != ours) continue;
      architectures.push_back(ours);
      if (auto subs = entry.find("subArchitectures"); subs != entry.end() && subs->is_array()) {
        for (const json& sub : *subs) architectures.push_back(sub);
      }
    }
  }
  if (!architectures.empty()) out["architectures"] = std::move(architectures);

  json syscalls = json::array();
  auto rules = profile.find("syscalls");
  if (rules != profile.end() && !rules->is_null()) {
    if (!rules->is_array()) return not_a_profile("syscalls is not an array");
    for (const json& rule : *rules) {
      if (!rule.is_object()) return not_a_profile("a syscall rule is not an object");
      if (!filter_holds(rule.value("includes", json::object()), target, true) ||
          filter_holds(rule.value("excludes", json::object()), target, false)) {
        continue;
      }
      std::vector<std::string> names;
      if (auto name = rule.find("name"); name != rule.end() && name->is_string()) {
        names.push_back(name->get<std::string>());
      }
      if (auto list = rule.find("names"); list != rule.end() && list->is_array()) {
        for (const json& n : *list) {
          if (n.is_string()) names.push_back(n.get<std::string>());
        }
      }
      auto action = rule.find("action");
      if (names.empty() || action == rule.end() || !action->is_string()) {
        return not_a_profile("a syscall rule without names or action");
      }
      std::optional<unsigned> errno_ret;
      if (auto e = rule.find("errnoRet"); e != rule.end() && e->is_number_unsigned()) {
        errno_ret = e->get<unsigned>();
      }
      syscalls.push_back(syscall_rule(std::move(names), action->get<std::string>(), errno_ret,
                                      rule.value("args", json())));
    }
  }
  if (!has_capability(target, "CAP_SYS_ADMIN")) refuse_new_namespaces(syscalls, target);
  out["syscalls"] = std::move(syscalls);
  return out;
}

std::optional<std::string> default_seccomp_profile_path() {
  for (const char* path : {"/etc/containers/seccomp.json", "/usr/share/containers/seccomp.json"}) {
    if (::access(path, F_OK) == 0) return std::string(path);
  }
  return std::nullopt;
}

Expected<std::optional<json>> default_oci_seccomp(const SeccompTarget& target) {
  auto path = default_seccomp_profile_path();
  if (!path) return std::optional<json>();
  auto text = read_whole_file(*path);
  if (!text) {
    return Error::failure(fmt::format("cannot read the seccomp profile {}: {}", *path,
                                      errno_text(text.error())));
  }
  json profile;
  try {
    profile = json::parse(text.value());
  } catch (const json::exception& e) {
    return Error::bad_input(fmt::format("the seccomp profile {} is not JSON ({})", *path, e.what()));
  }
  auto converted = oci_seccomp_from_profile(profile, target);
  if (!converted) {
    return Error::bad_input(fmt::format("{}: {}", *path, converted.error().message));
  }
  return std::optional<json>(std::move(converted).value());
}

}  // namespace hostchanfs::mountctl
