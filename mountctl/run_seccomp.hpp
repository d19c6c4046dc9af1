// The seccomp filter of `hostchanfs run`'s container: the containers' default profile (the
// file podman and CRI-O use, /usr/share/containers/seccomp.json, in containers/common's
// format) turned into the OCI runtime-spec's `linux.seccomp` for one container, the way
// containers/common turns it for podman:
//   - architectures: the archMap entry of this machine's architecture and its
//     sub-architectures (or the profile's own `architectures` list);
//   - a rule is kept when its `includes` all hold and none of its `excludes` does: `caps`
//     against the container's bounding set, `arches` against this machine's (Go's names:
//     amd64, arm64, ...), `minKernel` against the running kernel;
//   - `name` or `names`, `action`, `errnoRet`, `args` carried over as they are.
// Then one rule the containers' profile leaves to the capabilities and Docker's does not:
// without CAP_SYS_ADMIN, no new namespace (the kernel lets anyone make a user namespace,
// and inside it every capability): `unshare` fails with EPERM, `clone` with a CLONE_NEW*
// flag too, and `clone3` (whose flags seccomp cannot read) with ENOSYS, so that the C
// library falls back to `clone`.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "mountctl/error.hpp"

namespace hostchanfs::mountctl {

// What the conversion looks at besides the profile.
struct SeccompTarget {
  std::string arch;                    // Go's name of the architecture: "amd64", "arm64", ...
  std::vector<std::string> bounding;   // the container's bounding set: "CAP_KILL", ...
  int kernel_major = 0, kernel_minor = 0;
};

// This machine (uname) with the container's bounding set.
SeccompTarget seccomp_target_here(std::vector<std::string> bounding);

// The OCI `linux.seccomp` object. kBadInput (one line) when the profile is not one.
Expected<nlohmann::json> oci_seccomp_from_profile(const nlohmann::json& profile,
                                                  const SeccompTarget& target);

// The profile podman would use: /etc/containers/seccomp.json if it exists, else
// /usr/share/containers/seccomp.json; nullopt when neither does.
std::optional<std::string> default_seccomp_profile_path();

// The default profile converted for `target`; nullopt when there is no profile file.
Expected<std::optional<nlohmann::json>> default_oci_seccomp(const SeccompTarget& target);

}  // namespace hostchanfs::mountctl
