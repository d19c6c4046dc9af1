// Which /dev/fuse descriptor each thread of a daemon reads and answers on
// (fs/session_clones.hpp): a clone per worker, in the order workers first read; the
// session's descriptor for workers beyond the clones and for threads that never read.
// (That the clones outlive a dead daemon is tests/mountctl/restart_test.cpp's.)
#include <gtest/gtest.h>

#include <set>
#include <thread>
#include <vector>

#include "fs/session_clones.hpp"

namespace hostchanfs::fs {
namespace {

constexpr int kSessionFd = 7;

TEST(SessionClones, EachWorkerKeepsItsOwnCloneAndOthersUseTheSessionDescriptor) {
  use_worker_clones({100, 101, 102});
  EXPECT_EQ(worker_index(), -1);
  EXPECT_EQ(worker_write_fd(kSessionFd), kSessionFd);  // never read: a notification, say

  std::vector<int> read_fd(4), write_fd(4), again(4), index(4);
  for (int i = 0; i < 4; ++i) {
    // One after the other, so that the order of first reads is known.
    std::thread([&, i] {
      read_fd[i] = worker_read_fd(kSessionFd);
      write_fd[i] = worker_write_fd(kSessionFd);
      again[i] = worker_read_fd(kSessionFd);
      index[i] = worker_index();
    }).join();
  }
  EXPECT_EQ(read_fd, (std::vector<int>{100, 101, 102, kSessionFd}));
  EXPECT_EQ(write_fd, read_fd);  // a reply goes to the device its request came from
  EXPECT_EQ(again, read_fd);
  EXPECT_EQ(index, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(clone_of_worker(1, kSessionFd), 101);
  EXPECT_EQ(clone_of_worker(3, kSessionFd), kSessionFd);
  EXPECT_EQ(worker_write_fd(kSessionFd), kSessionFd);  // this thread still never read
}

TEST(SessionClones, WithoutClonesEveryWorkerUsesTheSessionDescriptor) {
  use_worker_clones({});
  std::set<int> seen;
  for (int i = 0; i < 3; ++i) {
    std::thread([&] { seen.insert(worker_read_fd(kSessionFd)); }).join();
  }
  EXPECT_EQ(seen, std::set<int>{kSessionFd});
}

}  // namespace
}  // namespace hostchanfs::fs
