// Result<T>: a value or an errno (std::errc). The store and the system-call wrappers
// return these; nothing below the FUSE adapter or the CLI reads the global errno later
// than the line after the call that set it.
#pragma once

#include <boost/outcome.hpp>

#include <cerrno>
#include <system_error>

namespace hostchanfs {

namespace outcome = BOOST_OUTCOME_V2_NAMESPACE;

template <class T>
using Result = outcome::result<T, std::errc, outcome::policy::terminate>;

using outcome::success;

inline std::errc last_errc() noexcept { return static_cast<std::errc>(errno); }
inline int to_errno(std::errc e) noexcept { return static_cast<int>(e); }

// The errno-returning syscall idiom: -1 means "look at errno".
inline Result<int> check_syscall(int rc) noexcept {
  if (rc < 0) return last_errc();
  return rc;
}

}  // namespace hostchanfs

// HC_TRY(var, expr): declare var from a Result, or return its error.
#define HC_TRY(var, expr) BOOST_OUTCOME_TRY(var, expr)
// HC_TRYV(expr): return the error of a Result<void>-like expression.
#define HC_TRYV(expr) BOOST_OUTCOME_TRYV(expr)
