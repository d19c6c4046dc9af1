#include "fs/session_clones.hpp"

#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <utility>

namespace hostchanfs::fs {

namespace {

// Written once before the loop starts (use_worker_clones), then only read.
std::vector<int> g_clones;
std::atomic<int> g_next_worker{0};
thread_local int t_worker = -1;

}  // namespace

unsigned session_workers() {
  // Handlers never block on anything slower than a store lock: a few per core suffice.
  return std::max(4u, 2 * std::max(1u, std::thread::hardware_concurrency()));
}

Result<std::vector<UniqueFd>> clone_fuse_fd(int fuse_fd, unsigned count) {
  std::vector<UniqueFd> clones;
  clones.reserve(count);
  for (unsigned i = 0; i < count; ++i) {
    UniqueFd clone(::open("/dev/fuse", O_RDWR | O_CLOEXEC));
    if (!clone) return last_errc();
    std::uint32_t master = static_cast<std::uint32_t>(fuse_fd);
    if (::ioctl(clone.get(), FUSE_DEV_IOC_CLONE, &master) < 0) return last_errc();
    clones.push_back(std::move(clone));
  }
  return clones;
}

void use_worker_clones(std::vector<int> fds) {
  g_clones = std::move(fds);
  g_next_worker = 0;
}

int worker_index() noexcept { return t_worker; }

int worker_read_fd(int fd) noexcept {
  if (t_worker < 0) t_worker = g_next_worker.fetch_add(1, std::memory_order_relaxed);
  return clone_of_worker(static_cast<std::size_t>(t_worker), fd);
}

int worker_write_fd(int fd) noexcept {
  return t_worker < 0 ? fd : clone_of_worker(static_cast<std::size_t>(t_worker), fd);
}

int clone_of_worker(std::size_t index, int fd) noexcept {
  return index < g_clones.size() ? g_clones[index] : fd;
}

}  // namespace hostchanfs::fs
