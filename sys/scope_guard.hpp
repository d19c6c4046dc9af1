// ScopeGuard: run a step when the scope ends, unless dismissed. The one way a multi-step
// change stays all-or-nothing here: each step that succeeded registers its undo, and the
// whole change dismisses the guards once it has succeeded.
//
//   ScopeGuard undo_mkdir([&] { ::rmdir(path); });
//   ...                      // an early return undoes the mkdir
//   undo_mkdir.dismiss();    // done: keep it
#pragma once

#include <utility>

namespace hostchanfs {

template <class F>
class [[nodiscard]] ScopeGuard {
 public:
  explicit ScopeGuard(F f) noexcept(noexcept(F(std::move(f)))) : f_(std::move(f)) {}
  ~ScopeGuard() {
    if (armed_) f_();
  }
  void dismiss() noexcept { armed_ = false; }
  ScopeGuard(const ScopeGuard&) = delete;
  ScopeGuard& operator=(const ScopeGuard&) = delete;

 private:
  F f_;
  bool armed_ = true;
};

}  // namespace hostchanfs
