// sys/child.hpp and sys/pidfd.hpp: what a child gets between fork and exec, how it is
// waited for, killed, reported and detached.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include "sys/child.hpp"
#include "sys/pidfd.hpp"
#include "sys/unique_fd.hpp"
#include "tests/support/files.hpp"
#include "tests/support/temp_dir.hpp"

namespace hostchanfs {
namespace {

using namespace std::chrono_literals;
using testing::read_file;
using testing::TempDir;

// `sh -c SCRIPT` run to its end; its exit status.
int run_sh(Exec& exec) {
  auto child = Child::spawn(exec);
  EXPECT_TRUE(child);
  return child ? child.value().wait() : -1;
}

TEST(Child, WaitGivesTheExitStatusOrTheSignal) {
  auto exits = Child::fork([] { return 7; });
  ASSERT_TRUE(exits);
  EXPECT_EQ(exits.value().wait(), 7);
  EXPECT_FALSE(exits.value().running());

  auto sleeps = Child::fork([] {
    ::pause();
    return 0;
  });
  ASSERT_TRUE(sleeps);
  EXPECT_EQ(sleeps.value().wait_for(0ms), std::nullopt) << "it is still running";
  sleeps.value().signal(SIGKILL);
  EXPECT_EQ(sleeps.value().wait(), 128 + SIGKILL);
  EXPECT_EQ(exit_status_of(0x0100), 1);
}

TEST(Child, AThrowingBodyExits126) {
  auto child = Child::fork([]() -> int { throw std::runtime_error("no"); });
  ASSERT_TRUE(child);
  EXPECT_EQ(child.value().wait(), 126);
}

TEST(Child, ItsOwnerKillsAndReapsIt) {
  pid_t pid = 0;
  UniqueFd watch;
  {
    auto child = Child::fork([] {
      ::pause();
      return 0;
    });
    ASSERT_TRUE(child);
    pid = child.value().pid();
    watch = std::move(open_pidfd(pid)).value();
  }
  EXPECT_TRUE(wait_pidfd(watch.get(), 0ms)) << "it ended with its owner";
  EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1) << "and was reaped";
  EXPECT_EQ(errno, ECHILD);
}

TEST(Child, TerminateSendsSigtermThenSigkill) {
  auto polite = Child::fork([] {
    ::pause();
    return 0;
  });
  ASSERT_TRUE(polite);
  EXPECT_TRUE(polite.value().terminate(60s));
  EXPECT_EQ(polite.value().wait(), 128 + SIGTERM);

  int ready[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  UniqueFd ready_read(ready[0]), ready_write(ready[1]);
  auto stubborn = Child::fork([&]() -> int {
    ::signal(SIGTERM, SIG_IGN);
    [[maybe_unused]] ssize_t n = ::write(ready_write.get(), "r", 1);
    for (;;) ::pause();
  });
  ASSERT_TRUE(stubborn);
  ready_write.reset();
  char c;
  ASSERT_EQ(::read(ready_read.get(), &c, 1), 1);
  EXPECT_FALSE(stubborn.value().terminate(100ms));
  EXPECT_EQ(stubborn.value().wait(), 128 + SIGKILL);
}

TEST(Child, ReleasedItOutlivesItsOwner) {
  Child::Released released{};
  {
    auto child = Child::fork([] {
      ::pause();
      return 0;
    });
    ASSERT_TRUE(child);
    released = child.value().release();
  }
  EXPECT_FALSE(wait_pidfd(released.pidfd.get(), 0ms)) << "still running";
  ASSERT_TRUE(signal_pidfd(released.pidfd.get(), SIGKILL));
  int status = 0;
  ASSERT_EQ(::waitpid(released.pid, &status, 0), released.pid);
  EXPECT_EQ(exit_status_of(status), 128 + SIGKILL);
}

TEST(Exec, PlacedDescriptorsDoNotClobberEachOther) {
  TempDir dir;
  // Two files that swap numbers in the child: a placement done in order would lose one.
  UniqueFd a(::open((dir.path() + "/a").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  UniqueFd b(::open((dir.path() + "/b").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  ASSERT_TRUE(a && b);
  Exec exec({"/bin/sh", "-c", "echo to-a >&" + std::to_string(b.get()) + "; echo to-b >&" +
                                  std::to_string(a.get())});
  exec.place_fd(a.get(), b.get()).place_fd(b.get(), a.get());
  EXPECT_EQ(run_sh(exec), 0);
  EXPECT_EQ(read_file(dir.path() + "/a"), "to-a\n");
  EXPECT_EQ(read_file(dir.path() + "/b"), "to-b\n");
}

TEST(Exec, KeptDescriptorsStayOpenOthersCloseStdinIsDevNull) {
  TempDir dir;
  UniqueFd kept(::open((dir.path() + "/kept").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  UniqueFd closed(::open((dir.path() + "/closed").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  UniqueFd out(::open((dir.path() + "/out").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  ASSERT_TRUE(kept && closed && out);
  std::string script = "echo kept >&" + std::to_string(kept.get()) +
                       "; (echo closed >&" + std::to_string(closed.get()) + ") 2>/dev/null"
                       "; readlink /proc/self/fd/0; pwd";
  Exec exec({"/bin/sh", "-c", script});
  exec.keep_fd(kept.get()).place_fd(out.get(), STDOUT_FILENO).cwd(dir.path());
  EXPECT_EQ(run_sh(exec), 0);
  EXPECT_EQ(read_file(dir.path() + "/kept"), "kept\n");
  EXPECT_EQ(read_file(dir.path() + "/closed"), "") << "a close-on-exec descriptor stays closed";
  EXPECT_EQ(read_file(dir.path() + "/out"), "/dev/null\n" + dir.path() + "\n");
}

TEST(Exec, ProgramSearchPathAndEnvironment) {
  TempDir dir;
  UniqueFd out(::open((dir.path() + "/out").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  ASSERT_TRUE(out);
  Exec exec({"sh", "-c", "echo \"$0 $HOSTCHANFS_EXEC_TEST\""});
  exec.search_path().env({"HOSTCHANFS_EXEC_TEST=seen"}).place_fd(out.get(), STDOUT_FILENO);
  EXPECT_EQ(run_sh(exec), 0);
  EXPECT_EQ(read_file(dir.path() + "/out"), "sh seen\n");

  Exec named({"a-name", "-c", "exit 3"});
  named.program("/bin/sh");
  EXPECT_EQ(run_sh(named), 3);

  Exec missing({"/nonexistent/program"});
  EXPECT_EQ(run_sh(missing), 127);
}

TEST(Exec, TheChildStartsWithNoSignalBlocked) {
  sigset_t usr1, old;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &usr1, &old), 0);
  // SigBlk of the shell: all zeros when nothing is blocked.
  Exec exec({"/bin/sh", "-c", "grep -q '^SigBlk:[[:space:]]*0*$' /proc/self/status"});
  int status = run_sh(exec);
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  EXPECT_EQ(status, 0);
}

TEST(RunInChild, ReportsWhatTheChildWroteAndItsStatus) {
  auto done = run_in_child([](int report_fd) {
    [[maybe_unused]] ssize_t n = ::write(report_fd, "why it failed", 13);
    return 2;
  });
  ASSERT_TRUE(done);
  EXPECT_EQ(done.value().status, 2);
  EXPECT_EQ(done.value().report, "why it failed");
}

TEST(SpawnDetached, TheProgramIsNotOurChild) {
  TempDir dir;
  std::string file = dir.path() + "/ran";
  Exec exec({"/bin/sh", "-c", "echo $$ > " + file + ".tmp && mv " + file + ".tmp " + file});
  auto pid = spawn_detached(exec);
  ASSERT_TRUE(pid);
  EXPECT_EQ(::waitpid(pid.value(), nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD) << "not our child";
  // Bounded wait for the file, not a timing assertion.
  for (int i = 0; i < 6000 && read_file(file).front() == '<'; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(read_file(file), std::to_string(pid.value()) + "\n");
}

}  // namespace
}  // namespace hostchanfs
