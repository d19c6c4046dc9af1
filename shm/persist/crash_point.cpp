#include "shm/persist/crash_point.hpp"

#include <signal.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string_view>

namespace hostchanfs::shm::persist::crash_point {

namespace detail {
std::atomic<bool> armed{false};
}  // namespace detail

namespace {

std::atomic<std::uint64_t> g_count{0};
std::atomic<std::uint64_t> g_target{0};
std::atomic<When> g_when{When::kBefore};

// HOSTCHANFS_CRASH_AT, read once at startup.
struct FromEnvironment {
  FromEnvironment() {
    const char* text = std::getenv("HOSTCHANFS_CRASH_AT");
    if (!text || !*text) return;
    std::string_view v(text);
    When when = When::kBefore;
    if (v.ends_with('+')) {
      when = When::kAfter;
      v.remove_suffix(1);
    }
    std::uint64_t k = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), k);
    if (ec != std::errc{} || end != v.data() + v.size() || k == 0) {
      std::fprintf(stderr,
                   "hostchanfs: HOSTCHANFS_CRASH_AT=%s is not a step: give k or k+ (k >= 1), "
                   "or unset it\n",
                   text);
      std::_Exit(2);
    }
    arm(k, when);
  }
} const g_from_environment;

}  // namespace

void detail::reached(When when) noexcept {
  std::uint64_t n = when == When::kBefore ? g_count.fetch_add(1, std::memory_order_relaxed) + 1
                                          : g_count.load(std::memory_order_relaxed);
  if (n == g_target.load(std::memory_order_relaxed) &&
      when == g_when.load(std::memory_order_relaxed)) {
    ::kill(::getpid(), SIGKILL);
    for (;;) ::pause();  // SIGKILL is delivered on the way out of kill(); never reached
  }
}

void arm(std::uint64_t k, When when) noexcept {
  g_count.store(0, std::memory_order_relaxed);
  g_target.store(k, std::memory_order_relaxed);
  g_when.store(when, std::memory_order_relaxed);
  detail::armed.store(true, std::memory_order_relaxed);
}

void disarm() noexcept {
  detail::armed.store(false, std::memory_order_relaxed);
  g_count.store(0, std::memory_order_relaxed);
}

std::uint64_t steps() noexcept { return g_count.load(std::memory_order_relaxed); }

}  // namespace hostchanfs::shm::persist::crash_point
