#include "sys/unix_socket.hpp"

#include <sys/stat.h>

#include <cstring>
#include <string>

namespace hostchanfs {

Result<UnixAddress> unix_address(std::string_view path) noexcept {
  UnixAddress a;
  a.addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.addr.sun_path) return std::errc::filename_too_long;
  std::memcpy(a.addr.sun_path, path.data(), path.size());
  a.addr.sun_path[path.size()] = '\0';
  return a;
}

Result<UniqueFd> listen_unix(std::string_view path, mode_t mode, int backlog) noexcept {
  HC_TRY(address, unix_address(path));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd || ::bind(fd.get(), address.get(), address.size()) < 0 ||
      ::chmod(address.addr.sun_path, mode) < 0 || ::listen(fd.get(), backlog) < 0) {
    return last_errc();
  }
  return fd;
}

Result<UniqueFd> connect_unix(const UnixAddress& address) noexcept {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd || ::connect(fd.get(), address.get(), address.size()) < 0) return last_errc();
  return fd;
}

}  // namespace hostchanfs
