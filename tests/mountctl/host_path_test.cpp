// Host paths as a hostile local user and a careless operator would give them, on real
// mounts: a symlinked parent, a symlink planted inside a channel for a later mount under
// it, a RENAME_EXCHANGE race against the mount, /proc and /sys, and removals that must
// take exactly the channel's own mount and directories. Each attack must fail with one
// line and leave nothing behind (CheckedControllerTest's TearDown checks mounts and
// processes; the tests check what is left on disk).
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <string>

#include "tests/mountctl/harness.hpp"

namespace hostchanfs::testing {
namespace {

using HostPathTest = CheckedControllerTest;

constexpr uid_t kNobody = 65534;

bool one_line(const std::string& text) {
  return !text.empty() && text.find('\n') == text.size() - 1;
}

std::string contents(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::set<std::string> entries(const std::string& dir) {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) names.insert(e.path().filename());
  return names;
}

// A directory of someone else's (a plain user: they may rename, swap and plant in it).
std::string users_dir(const ControllerWorld& world, const std::string& name) {
  std::string dir = world.path(name);
  if (::mkdir(dir.c_str(), 0755) < 0 || ::chown(dir.c_str(), kNobody, kNobody) < 0) {
    throw std::runtime_error("cannot make " + dir);
  }
  return dir;
}

TEST_F(HostPathTest, ASymlinkedParentIsRefused) {
  std::string target = world_->path("t");
  ASSERT_EQ(::mkdir(target.c_str(), 0755), 0);
  ASSERT_EQ(::symlink(target.c_str(), world_->path("plink").c_str()), 0);
  auto r = hostchanfs({"mount", world_->path("plink/sub") + ":/x:rw:1M"});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(r.err, "hostchanfs: host path \"" + world_->path("plink/sub") + "\": " +
                       world_->path("plink") + " is a symlink: give the path without symlinks "
                       "(a channel's host path never follows one)\n");
  EXPECT_EQ(entries(target), std::set<std::string>{}) << "nothing made where the symlink points";
  EXPECT_EQ(ls().size(), 0u);
}

TEST_F(HostPathTest, ASymlinkPlantedInAChannelLeadsNowhere) {
  std::string chan = world_->path("chan");
  std::string victim = world_->path("victim");
  ASSERT_EQ(::mkdir(victim.c_str(), 0755), 0);
  { std::ofstream(victim + "/keep") << "victim"; }
  ASSERT_EQ(hostchanfs({"mount", chan + ":/data:rw:1M"}).status, 0);
  // What a container with the channel can do: plant a symlink for the operator's next mount.
  ASSERT_EQ(::symlink(victim.c_str(), (chan + "/link").c_str()), 0);
  for (const std::string& host : {chan + "/link/sub", chan + "/sub"}) {
    auto r = hostchanfs({"mount", host + ":/x:rw:1M"});
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_EQ(r.err, "hostchanfs: host path \"" + host + "\" is inside channel " + chan +
                         ": give a path outside every channel\n");
  }
  EXPECT_EQ(entries(victim), std::set<std::string>{"keep"});
  EXPECT_EQ(mounts_under(world_->work()), std::vector<std::string>{chan});
  EXPECT_EQ(hostchanfs({"umount", chan}).status, 0);
}

TEST_F(HostPathTest, AChannelOfAnotherControllerIsNoPlaceEither) {
  std::string other_run = world_->path("other-run");
  std::string chan = world_->path("theirs");
  ASSERT_EQ(hostchanfs({"--run-dir", other_run, "mount", chan + ":/x:rw:1M"}).status, 0);
  for (const std::string& host : {chan, chan + "/sub"}) {
    auto r = hostchanfs({"mount", host + ":/x:rw:1M"});
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_TRUE(one_line(r.err)) << r.err;
    EXPECT_NE(r.err.find(host == chan ? "already exists (a channel)" : "is inside channel " + chan),
              std::string::npos) << r.err;
  }
  EXPECT_EQ(hostchanfs({"--run-dir", other_run, "umount", chan}).status, 0);
  auto pid = read_small_file(other_run + "/controller.pid");
  auto pidfd = open_pidfd(std::stoi(pid));
  ASSERT_TRUE(pidfd);
  EXPECT_TRUE(terminate_pidfd(pidfd.value().get(), std::chrono::seconds(60)));
}

TEST_F(HostPathTest, KernelFileSystemsAndTheRunDirAreRefused) {
  for (const std::string host : {"/proc/hostchanfs-test", "/sys/hostchanfs-test", "/proc"}) {
    auto r = hostchanfs({"mount", host + ":/x::1M"});
    EXPECT_EQ(r.status, 2) << host << ": " << r.err;
    EXPECT_TRUE(one_line(r.err)) << r.err;
    EXPECT_NE(r.err.find("the kernel's own file system"), std::string::npos) << r.err;
  }
  EXPECT_FALSE(world_->controller_pid()) << "refused before any controller was started";
  std::string in_run_dir = world_->run_dir() + "/registry/x";
  auto r = hostchanfs({"mount", in_run_dir + ":/x::1M"});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_TRUE(one_line(r.err)) << r.err;
  EXPECT_NE(r.err.find("is in the controller's run dir"), std::string::npos) << r.err;
  EXPECT_FALSE(exists(in_run_dir));
}

// A racer, as a plain user who owns the host path's parent, swaps the host directory for a
// symlink to a victim directory with renameat2(RENAME_EXCHANGE) as fast as it can, while
// the operator mounts and unmounts there a bounded number of times. Whatever the race,
// no mount may land anywhere but the host path, and the victim must stay as it was
// (neither hidden under a mount nor removed).
TEST_F(HostPathTest, ARenameExchangeRaceNeverMountsElsewhere) {
  std::string race = users_dir(*world_, "race");
  std::string victim = world_->path("victim");
  ASSERT_EQ(::mkdir(victim.c_str(), 0755), 0);
  { std::ofstream(victim + "/keep") << "victim"; }
  struct stat victim_st {};
  ASSERT_EQ(::stat(victim.c_str(), &victim_st), 0);
  std::string host = race + "/chan", swap = race + "/swap";

  ChildProcess racer = ChildProcess::fork([&] {
    if (::setresgid(kNobody, kNobody, kNobody) < 0 || ::setresuid(kNobody, kNobody, kNobody) < 0) return 1;
    if (::symlink(victim.c_str(), swap.c_str()) < 0) return 2;
    // Exchange the host directory with the symlink as soon as there is one; with nothing
    // to exchange, keep the symlink under the other name, ready.
    for (;;) {
      if (::renameat2(AT_FDCWD, host.c_str(), AT_FDCWD, swap.c_str(), RENAME_EXCHANGE) < 0 && errno == ENOENT) {
        ::rename(host.c_str(), swap.c_str());
      }
    }
  });
  int mounted = 0;
  std::map<std::string, int> refusals;  // by what they say, to show what the race hit
  for (int attempt = 0; attempt < 40; ++attempt) {
    auto r = hostchanfs({"mount", host + ":/x:rw:1M"});
    auto left = mounts_under(world_->work());
    ASSERT_EQ(contents(victim + "/keep"), "victim") << "attempt " << attempt;
    struct stat st {};
    ASSERT_EQ(::stat(victim.c_str(), &st), 0);
    ASSERT_EQ(st.st_dev, victim_st.st_dev) << "a mount hides the victim (attempt " << attempt << ")";
    if (r.status == 0) {
      ++mounted;
      // Mounted at the host path, checked there by the controller. A rename that passed
      // its mount point check just before the mount was attached may still complete
      // after it (a window in the kernel between rename's is_local_mountpoint and
      // move_mount), and carry the mount to the racer's other name: still in the racer's
      // own directory, as renaming any of its ancestors would. Never anywhere else.
      ASSERT_EQ(left.size(), 1u) << "attempt " << attempt << "\n" << world_->controller_log();
      ASSERT_TRUE(left.front() == host || left.front() == swap)
          << left.front() << " (attempt " << attempt << ")\n" << world_->controller_log();
      auto u = hostchanfs({"umount", host});
      ASSERT_TRUE(u.status == 0 || u.status == 1) << u.err;
    } else {
      ASSERT_TRUE(one_line(r.err)) << r.err;
      std::string what = r.err;
      for (auto at = what.find(race); at != std::string::npos; at = what.find(race)) what.replace(at, race.size(), "R");
      ++refusals[what.substr(0, 70)];
      ASSERT_EQ(left, std::vector<std::string>{}) << "attempt " << attempt << ": " << r.err;
    }
    ASSERT_EQ(mounts_under(world_->work()), std::vector<std::string>{}) << "attempt " << attempt;
    // An empty directory of ours that the racer swapped away from under its removal stays
    // in the racer's directory (it is no longer where it was made, and a directory cannot
    // be removed by descriptor); take it away so that the next attempt races again.
    auto is_dir = [](const std::string& p) {
      struct stat s {};
      return ::lstat(p.c_str(), &s) == 0 && S_ISDIR(s.st_mode);
    };
    for (int i = 0; i < 1000 && (is_dir(host) || is_dir(swap)); ++i) {
      ::rmdir(host.c_str());
      ::rmdir(swap.c_str());
    }
  }
  racer.kill_and_reap();
  std::cout << "race: " << mounted << " mounted\n";
  for (const auto& [what, count] : refusals) std::cout << "race: " << count << " refused:" << what << "\n";
  EXPECT_EQ(contents(victim + "/keep"), "victim");
  // What is left in the racer's directory is its own symlink, maybe under the other name.
  auto names = entries(race);
  names.erase("chan");
  names.erase("swap");
  EXPECT_EQ(names, std::set<std::string>{});
  EXPECT_EQ(ls().size(), 0u);
}

TEST_F(HostPathTest, UmountFindsTheMountWhereARenameMovedIt) {
  std::string host = world_->path("p/chan");
  ASSERT_EQ(hostchanfs({"mount", host + ":/x:rw:1M"}).status, 0);
  // A parent the channel made is renamed (a mount point itself cannot be).
  ASSERT_EQ(std::rename(world_->path("p").c_str(), world_->path("moved").c_str()), 0);
  auto r = hostchanfs({"umount", host});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(mounts_under(world_->work()), std::vector<std::string>{});
  EXPECT_TRUE(exists(world_->path("moved/chan"))) << "directories are removed only where they were";
  EXPECT_EQ(ls().size(), 0u);
}

TEST_F(HostPathTest, UmountFailsWhileAnotherMountCoversTheChannel) {
  std::string host = world_->path("chan");
  ASSERT_EQ(hostchanfs({"mount", host + ":/x:rw:1M"}).status, 0);
  ASSERT_EQ(::mount("tmpfs", host.c_str(), "tmpfs", 0, "size=64k"), 0);
  auto r = hostchanfs({"umount", host});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_EQ(r.err, "hostchanfs: channel " + host + ": another mount covers it at " + host +
                       ": unmount that one first\n");
  EXPECT_EQ(ls().size(), 1u) << "the channel is still there, and still listed";
  ASSERT_EQ(::umount2(host.c_str(), 0), 0);
  r = hostchanfs({"umount", host});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(exists(host));
}

TEST_F(HostPathTest, ALongHostPathSurvivesARestart) {
  std::string host = world_->work();
  while (host.size() < 400) host += "/" + std::string(60, 'd');
  host = host.substr(0, 400);
  if (host.back() == '/') host.back() = 'e';
  ASSERT_EQ(host.size(), 400u);
  ASSERT_EQ(hostchanfs({"mount", host + ":/x:rw:1M"}).status, 0);
  { std::ofstream(host + "/f") << std::string(8192, 'x'); }
  ASSERT_TRUE(world_->controller_pid());
  world_->kill_controller();
  auto list = ls();  // a new controller, from the registry
  ASSERT_EQ(list.size(), 1u) << world_->controller_log();
  EXPECT_EQ(list[0]["host_path"], host);
  EXPECT_EQ(list[0]["state"], "running");
  EXPECT_EQ(list[0]["bytes_used"], 8192u);
  auto r = hostchanfs({"umount", host});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(exists(world_->path(std::string(60, 'd'))));
}

}  // namespace
}  // namespace hostchanfs::testing
