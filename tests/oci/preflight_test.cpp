// Preflight: the machine, not hostchanfs. runc and crun run a busybox bundle (cgroups,
// state dirs, deletion by id) and podman runs with --rootfs, all without any hook. When
// these fail, the channel tests in runtime_test.cpp cannot pass, whatever hostchanfs does.
// Label `preflight` (ctest -L preflight, or -LE preflight to leave them out).
#include <gtest/gtest.h>

#include <string>

#include "tests/oci/oci_support.hpp"
#include "tests/support/fuse_required.hpp"

namespace hostchanfs::testing::oci {
namespace {

class Runtime : public ::testing::TestWithParam<std::string> {};

TEST_P(Runtime, RunsABusyboxContainer) {
  HOSTCHANFS_REQUIRE_FUSE();
  TempDir dir;
  BundleOptions options;
  options.runtime = GetParam();
  options.args = {"/bin/sh", "-c", "echo hello from $0"};
  options.with_hooks = false;
  make_bundle(dir / "bundle", options);
  OciContainer ct(GetParam(), dir / "bundle", "hc-scaffold-" + GetParam());
  auto created = ct.create();
  ASSERT_EQ(created.exit_code, 0) << created.describe();
  EXPECT_EQ(ct.status(), "created");
  auto started = ct.start();
  ASSERT_EQ(started.exit_code, 0) << started.describe();
  ASSERT_TRUE(ct.wait_stopped());
  EXPECT_EQ(ct.output(), "hello from /bin/sh\n");
  auto removed = ct.remove();
  EXPECT_EQ(removed.exit_code, 0) << removed.describe();
  EXPECT_EQ(ct.status(), "");
}

TEST(Podman, RunsWithRootfs) {
  HOSTCHANFS_REQUIRE_FUSE();
  PrivateHost::get();
  TempDir dir;
  make_busybox_rootfs(dir / "rootfs");
  Podman podman(dir / "podman");
  auto r = podman.run("hc-scaffold-podman", (dir / "rootfs").string(), {},
                      {"/bin/sh", "-c", "echo hello from podman"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "hello from podman\n");
}

INSTANTIATE_TEST_SUITE_P(OciRuntimes, Runtime, ::testing::Values("runc", "crun"), runtime_name);

}  // namespace
}  // namespace hostchanfs::testing::oci
