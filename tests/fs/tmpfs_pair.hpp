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
#include "tests/support/fuse_test.hpp"
#include "tests/support/fuse_required.hpp"
#include "tests/support/mount_namespace.hpp"
#include "tests/support/scoped_mounts.hpp"

namespace hostchanfs::testing {

class TmpfsPair : public FuseTest {
 protected:
  static constexpr std::uint64_t kDefaultSize = 8ull << 20;
  static constexpr std::uint64_t kDefaultInodes = 1024;

  void SetUp() override {
    FuseTest::SetUp();
    ::umask(022);
  }
  void TearDown() override {
    hostchanfs_.reset();
    tmpfs_.reset();
    FuseTest::TearDown();  // the namespace goes last
  }

  void mount(std::uint64_t size = kDefaultSize, std::uint64_t inodes = kDefaultInodes) {
    hostchanfs_.reset();
    tmpfs_.reset();
    tmpfs_ = std::make_unique<ScopedTmpfs>(size, inodes);
    hostchanfs_ = std::make_unique<ScopedHostchanfs>(size, inodes);
  }

  // Run `steps` on both (mounting the defaults first if nothing is mounted) and compare;
  // returns hostchanfs's trace for further checks.
  std::vector<std::string> compare(const std::function<void(Trace&)>& steps) {
    if (!tmpfs_) mount();
    Trace reference(tmpfs_->path());
    steps(reference);
    Trace ours(hostchanfs_->path());
    steps(ours);
    // HOSTCHANFS_TRACE=1 prints both traces, to see what a comparison covers.
    bool show = std::getenv("HOSTCHANFS_TRACE") != nullptr;
    std::size_t n = std::max(ours.lines().size(), reference.lines().size());
    for (std::size_t i = 0; i < n; ++i) {
      std::string mine = i < ours.lines().size() ? ours.lines()[i] : "<missing>";
      std::string want = i < reference.lines().size() ? reference.lines()[i] : "<missing>";
      if (show) std::fprintf(stderr, "%s %s\n", mine == want ? "   " : "!!!", want.c_str());
      EXPECT_EQ(mine, want) << "step " << i << " (left: hostchanfs, right: tmpfs)";
    }
    return ours.lines();
  }

  const std::string& tmpfs_path() const { return tmpfs_->path(); }
  const std::string& hostchanfs_path() const { return hostchanfs_->path(); }

 private:
  std::unique_ptr<ScopedTmpfs> tmpfs_;
  std::unique_ptr<ScopedHostchanfs> hostchanfs_;
};

}  // namespace hostchanfs::testing
