// Mapping: sole owner of an mmap()ed range. Non-copyable, movable; unmaps on destruction.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <utility>

#include "sys/result.hpp"

namespace hostchanfs {

class Mapping {
 public:
  Mapping() noexcept = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  Mapping(Mapping&& o) noexcept
      : addr_(std::exchange(o.addr_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  Mapping& operator=(Mapping&& o) noexcept {
    if (this != &o) {
      reset();
      addr_ = std::exchange(o.addr_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  ~Mapping() { reset(); }

  // Map `size` bytes of `fd` shared, read-write. MAP_NORESERVE: pages exist only once
  // written, so a large, mostly empty region costs nothing.
  static Result<Mapping> map_shared(int fd, std::size_t size, off_t offset = 0) noexcept {
    return map(size, MAP_SHARED | MAP_NORESERVE, fd, offset);
  }
  // `size` bytes of zeros of this process alone.
  static Result<Mapping> map_anonymous(std::size_t size) noexcept {
    return map(size, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  }

  std::byte* data() const noexcept { return addr_; }
  std::size_t size() const noexcept { return size_; }

  void reset() noexcept {
    if (addr_) ::munmap(addr_, size_);
    addr_ = nullptr;
    size_ = 0;
  }

 private:
  static Result<Mapping> map(std::size_t size, int flags, int fd, off_t offset) noexcept {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, flags, fd, offset);
    if (p == MAP_FAILED) return last_errc();
    Mapping m;
    m.addr_ = static_cast<std::byte*>(p);
    m.size_ = size;
    return m;
  }

  std::byte* addr_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace hostchanfs
