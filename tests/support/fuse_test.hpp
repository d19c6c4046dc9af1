// The fixture of a test that mounts: FUSE required (see fuse_required.hpp), and a private
// mount namespace for the whole test, so its mounts vanish with it even if it dies.
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "tests/support/fuse_required.hpp"
#include "tests/support/mount_namespace.hpp"

namespace hostchanfs::testing {

class FuseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HOSTCHANFS_REQUIRE_FUSE();
    ns_ = std::make_unique<PrivateMountNamespace>();
  }
  void TearDown() override { ns_.reset(); }

 private:
  std::unique_ptr<PrivateMountNamespace> ns_;
};

}  // namespace hostchanfs::testing
