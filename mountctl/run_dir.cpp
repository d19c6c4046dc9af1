#include "mountctl/run_dir.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include <fmt/format.h>

#include "mountctl/root_owned.hpp"
#include "mountctl/spec.hpp"
#include "mountctl/text.hpp"
#include "sys/dirs.hpp"
#include "sys/errno_text.hpp"

namespace hostchanfs::mountctl {

namespace {

constexpr const char* kFix = "give a run dir that is root's own (--run-dir or $HOSTCHANFS_RUN_DIR)";

Error not_root_own(const std::string& what, const std::string& why) {
  return Error::bad_input(fmt::format(
      "{} {}: it must be root's own (owned by uid 0, writable by root only): remove it, or {}",
      what, why, kFix));
}

}  // namespace

std::string default_run_dir() {
  const char* env = std::getenv("HOSTCHANFS_RUN_DIR");
  return env && *env ? std::string(env) : std::string(kBuiltinRunDir);
}

std::string log_path(const std::string& run_dir) { return run_dir + "/" + kLogName; }

Expected<RunDir> RunDir::open(const std::string& given, bool create) {
  if (auto problem = text_problem(given)) {
    return Error::bad_input(fmt::format("run dir \"{}\" {}: {}", printable(given), *problem, kFix));
  }
  if (given.empty() || given.front() != '/') {
    return Error::bad_input(fmt::format(
        "run dir \"{}\" is not an absolute path: give a path that starts with /", given));
  }
  std::string path = clean_path(given);
  auto walk = walk_dirs(path);
  if (!walk) {
    return Error::bad_input(fmt::format(
        "run dir {}: {}: the run dir is reached without following a symlink; {}", path,
        what_is_wrong(walk.error()), kFix));
  }
  // Whoever can rename in a directory above the run dir can put another one in its place.
  auto above = walk.value().steps;
  if (walk.value().missing.empty()) above.pop_back();
  if (auto bad = untrusted_directory(above)) {
    return Error::bad_input(fmt::format(
        "run dir {}: {}: every directory above the run dir must be root's and writable by root "
        "only (or sticky, as /tmp); {}", path, *bad, kFix));
  }
  UniqueFd fd;
  if (walk.value().missing.empty()) {
    fd = std::move(walk.value().dir);
  } else {
    if (!create) return Error::not_found(fmt::format("run dir {} does not exist", path));
    auto made = make_dirs(std::move(walk).value(), 0755, 0700);
    if (!made) {
      return Error::failure(fmt::format("cannot make run dir {}: {}", path,
                                        what_is_wrong(made.error())));
    }
    fd = std::move(made.value().dir);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) < 0) {
    return Error::failure(fmt::format("cannot stat run dir {}: {}", path, errno_text(last_errc())));
  }
  if (auto why = not_root_only(st)) return not_root_own("run dir " + path, *why);
  return RunDir(std::move(path), std::move(fd));
}

Expected<UniqueFd> RunDir::open_file(const char* name, int flags) const {
  return open_root_file(fd_.get(), name, file_path(name), flags);
}

std::string RunDir::socket_address(const char* name) const {
  return fmt::format("/proc/self/fd/{}/{}", fd_.get(), name);
}

Expected<UniqueFd> RunDir::open_registry(bool create) const {
  std::string path = file_path(kRegistryName);
  if (create && ::mkdirat(fd_.get(), kRegistryName, 0700) < 0 && errno != EEXIST) {
    return Error::failure(fmt::format("cannot make {}: {}", path, errno_text(last_errc())));
  }
  auto fd = openat2_fd(fd_.get(), kRegistryName, O_RDONLY | O_DIRECTORY, kResolveNoFollow);
  if (!fd) {
    if (fd.error() == std::errc::no_such_file_or_directory) {
      return Error::not_found(fmt::format("{} does not exist", path));
    }
    return not_root_own(path, "cannot be opened as a directory (" + errno_text(fd.error()) + ")");
  }
  struct stat st {};
  if (::fstat(fd.value().get(), &st) < 0) {
    return Error::failure(fmt::format("cannot stat {}: {}", path, errno_text(last_errc())));
  }
  if (auto why = not_root_only(st)) return not_root_own(path, *why);
  return std::move(fd).value();
}

Expected<UniqueFd> RunDir::claim() const {
  HC_TRY(lock, open_file(kLockName, O_RDWR | O_CREAT));
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) < 0) {
    if (errno == EWOULDBLOCK) return Error::already_running("another controller owns " + path_);
    return Error::failure(fmt::format("cannot lock {}: {}", file_path(kLockName),
                                      errno_text(last_errc())));
  }
  HC_TRY(pid, open_file(kPidName, O_WRONLY | O_CREAT));
  std::string text = fmt::format("{}\n", ::getpid());
  if (::ftruncate(pid.get(), 0) < 0 ||
      ::write(pid.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return Error::failure(fmt::format("cannot write {}: {}", file_path(kPidName),
                                      errno_text(last_errc())));
  }
  return std::move(lock);
}

}  // namespace hostchanfs::mountctl
