// ChildProcess: the product's Child (sys/child.hpp) with a test's defaults: it dies with
// the test (PR_SET_PDEATHSIG SIGKILL) and is killed and reaped when its owner goes out of
// scope, so a failing test leaves no process behind; a fork that fails throws.
#pragma once

#include <signal.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "sys/child.hpp"
#include "sys/errno_text.hpp"

namespace hostchanfs::testing {

class ChildProcess : public Child {
 public:
  struct Redirect {
    int from;  // a descriptor of the parent
    int to;    // its number in the child (kept open across exec)
  };

  ChildProcess() = default;
  ChildProcess(Child c) : Child(std::move(c)) {}

  // Run `body` in a forked child; its return value is the exit status. Use for steps that
  // need another uid (setresuid) or another process. The child never returns into the
  // test framework: it _exit()s.
  static ChildProcess fork(const std::function<int()>& body) {
    return must(Child::fork(body, SIGKILL), "fork");
  }

  // Execute `exec`; the child gets `death_signal` when the test dies.
  static ChildProcess spawn(Exec& exec, int death_signal = SIGKILL) {
    return must(Child::spawn(exec.die_with_parent(death_signal)), "fork");
  }

  // Execute argv[0] (a path) with the given descriptors placed; stdin is /dev/null unless
  // redirected, stdout/stderr are inherited unless redirected.
  static ChildProcess spawn(const std::vector<std::string>& argv,
                            const std::vector<Redirect>& redirects = {}) {
    Exec exec(argv);
    for (const auto& r : redirects) exec.place_fd(r.from, r.to);
    return spawn(exec);
  }

 private:
  static ChildProcess must(Result<Child> child, const char* what) {
    if (!child) throw std::runtime_error(std::string(what) + ": " + errno_text(child.error()));
    return std::move(child).value();
  }
};

}  // namespace hostchanfs::testing
