// TmpfsPair: the fixture of the comparison tests. It mounts, in a private mount
// namespace, a kernel tmpfs and a hostchanfs of the same size and inode limit, runs the
// same steps on each and expects identical traces.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <functional>
#include <memory>

#include "tests/fs/trace.hpp"
#include "tests/support/fuse_required.hpp"
#include "tests/support/mount_namespace.hpp"
#include "tests/support/scoped_mounts.hpp"

namespace hostchanfs::testing {

class TmpfsPair : public ::testing::Test {
 protected:
  static constexpr std::uint64_t kDefaultSize = 8ull << 20;
  static constexpr std::uint64_t kDefaultInodes = 1024;

  void SetUp() override {
    HOSTCHANFS_REQUIRE_FUSE();
    ::umask(022);
    ns_ = std::make_unique<PrivateMountNamespace>();
  }
  void TearDown() override {
    hostchanfs_.reset();
    tmpfs_.reset();
    ns_.reset();
  }

  void mount(std::uint64_t size = kDefaultSize, std::uint64_t inodes = kDefaultInodes) {
    hostchanfs_.reset();
    tmpfs_.reset();
    tmpfs_ = std::make_unique<ScopedTmpfs>(size, inodes);
    hostchanfs_ = std::make_unique<ScopedHostchanfs>(size, inodes);
  }

  // Run `steps` on both (mounting the defaults first if nothing is mounted) and compare.
  void compare(const std::function<void(Trace&)>& steps) {
    if (!tmpfs_) mount();
    Trace reference(tmpfs_->path());
    steps(reference);
    Trace ours(hostchanfs_->path());
    steps(ours);
    EXPECT_THAT(ours.lines(), ::testing::ElementsAreArray(reference.lines()))
        << "left: hostchanfs, right: tmpfs";
  }

  const std::string& tmpfs_path() const { return tmpfs_->path(); }
  const std::string& hostchanfs_path() const { return hostchanfs_->path(); }

 private:
  std::unique_ptr<PrivateMountNamespace> ns_;
  std::unique_ptr<ScopedTmpfs> tmpfs_;
  std::unique_ptr<ScopedHostchanfs> hostchanfs_;
};

}  // namespace hostchanfs::testing
