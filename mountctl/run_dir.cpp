#include "mountctl/run_dir.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>

#include <fmt/format.h>

#include "sys/dirs.hpp"
#include "sys/errno_text.hpp"

namespace hostchanfs::mountctl {

std::string default_run_dir() {
  const char* env = std::getenv("HOSTCHANFS_RUN_DIR");
  return env && *env ? std::string(env) : std::string(kBuiltinRunDir);
}

std::string socket_path(const std::string& run_dir) { return run_dir + "/controller.sock"; }
std::string lock_path(const std::string& run_dir) { return run_dir + "/controller.lock"; }
std::string pid_path(const std::string& run_dir) { return run_dir + "/controller.pid"; }
std::string log_path(const std::string& run_dir) { return run_dir + "/controller.log"; }
std::string registry_dir(const std::string& run_dir) { return run_dir + "/channels"; }

Expected<void> make_run_dir(const std::string& run_dir) {
  if (run_dir.empty() || run_dir.front() != '/') {
    return Error::bad_input(fmt::format("run dir \"{}\" is not an absolute path", run_dir));
  }
  auto made = make_dirs(run_dir, 0755, 0700);
  if (!made) {
    return Error::failure(fmt::format("cannot make run dir {}: {}", made.error().path,
                                      errno_text(made.error().error)));
  }
  return success();
}

Expected<UniqueFd> claim_run_dir(const std::string& run_dir) {
  std::string lock = lock_path(run_dir);
  UniqueFd fd(::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return Error::failure(fmt::format("cannot open {}: {}", lock, errno_text(last_errc())));
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) < 0) {
    if (errno == EWOULDBLOCK) return Error::already_running("another controller owns " + run_dir);
    return Error::failure(fmt::format("cannot lock {}: {}", lock, errno_text(last_errc())));
  }
  std::ofstream pid(pid_path(run_dir), std::ios::trunc);
  pid << ::getpid() << "\n";
  return fd;
}

}  // namespace hostchanfs::mountctl
