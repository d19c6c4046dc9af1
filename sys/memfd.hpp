// Anonymous memory files: the store's regions live in memfds owned by whoever created
// them (the controller), so no global /dev/shm name can leak.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

#include "sys/result.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs {

// A memfd of `size` bytes (sparse: no memory is used until pages are written).
inline Result<UniqueFd> make_memfd(const char* name, std::uint64_t size) noexcept {
  UniqueFd fd(::memfd_create(name, MFD_CLOEXEC));
  if (!fd) return last_errc();
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) < 0) return last_errc();
  return fd;
}

inline Result<std::uint64_t> fd_size(int fd) noexcept {
  off_t end = ::lseek(fd, 0, SEEK_END);
  if (end < 0) return last_errc();
  return static_cast<std::uint64_t>(end);
}

}  // namespace hostchanfs
