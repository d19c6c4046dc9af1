// Unix stream sockets at a filesystem path: the address, a listener, a connection.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <string_view>

#include "sys/result.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs {

struct UnixAddress {
  sockaddr_un addr{};
  const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&addr); }
  socklen_t size() const noexcept { return sizeof addr; }
};

// The address of `path`; ENAMETOOLONG when it does not fit in sun_path.
Result<UnixAddress> unix_address(std::string_view path) noexcept;

// A listening, non-blocking stream socket at `path` (which must not exist), chmod'ed to
// `mode` before it listens.
Result<UniqueFd> listen_unix(std::string_view path, mode_t mode, int backlog) noexcept;

// A stream socket connected to `address`.
Result<UniqueFd> connect_unix(const UnixAddress& address) noexcept;

}  // namespace hostchanfs
