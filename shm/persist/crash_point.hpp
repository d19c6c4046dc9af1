// crash_point: make this process die by SIGKILL at a chosen change to a persistent region,
// so that tests can kill a mutation at every one of its steps and check what survives.
//
//   HOSTCHANFS_CRASH_AT=k    die just BEFORE the k-th change is applied (its undo record,
//                            if it has one, is already in the log)
//   HOSTCHANFS_CRASH_AT=k+   die just AFTER the k-th change was applied
//
// The variable is read once, when the program starts (a static initializer in
// crash_point.cpp); a bad value is a one-line error and exit status 2. A test that forks
// arms the switch in the child with arm() instead. Counting is process-wide (all regions,
// all threads) and starts at 1 with the first change after arming.
//
// A "change" is every step a Tx takes that alters persistent state: each logged or fresh
// write, the commit point, each commit action (a punch), each undo step of a rollback or of
// a recovery, and the final clearing of the log. See tx.hpp for the exact sequence.
//
// Cost when unset: one relaxed load of a global flag and a predictable branch per change.
#pragma once

#include <atomic>
#include <cstdint>

namespace hostchanfs::shm::persist::crash_point {

enum class When : std::uint8_t { kBefore, kAfter };

namespace detail {
extern std::atomic<bool> armed;
void reached(When when) noexcept;
}  // namespace detail

// Die at the k-th change from now on (k >= 1). UINT64_MAX counts without ever dying.
void arm(std::uint64_t k, When when) noexcept;
void disarm() noexcept;
// Changes counted since arm() (0 when unarmed).
std::uint64_t steps() noexcept;

// Called by the tx machinery around every change.
inline void before() noexcept {
  if (detail::armed.load(std::memory_order_relaxed)) [[unlikely]]
    detail::reached(When::kBefore);
}
inline void after() noexcept {
  if (detail::armed.load(std::memory_order_relaxed)) [[unlikely]]
    detail::reached(When::kAfter);
}

}  // namespace hostchanfs::shm::persist::crash_point
