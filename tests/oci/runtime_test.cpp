// runc and crun with busybox bundles, and podman with --rootfs: the scaffolding works
// on this host (cgroups, state dirs, deletion by id).
#include <gtest/gtest.h>

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
  make_bundle(dir.path() / "bundle", options);
  OciContainer ct(GetParam(), dir.path() / "bundle", "hc-scaffold-" + GetParam());
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

std::string runtime_name(const ::testing::TestParamInfo<std::string>& runtime) {
  return runtime.param;
}
INSTANTIATE_TEST_SUITE_P(OciRuntimes, Runtime, ::testing::Values("runc", "crun"), runtime_name);

TEST(Podman, RunsWithRootfs) {
  HOSTCHANFS_REQUIRE_FUSE();
  PrivateHost::get();
  TempDir dir;
  make_busybox_rootfs(dir.path() / "rootfs");
  Podman podman(dir.path() / "podman");
  auto r = podman.run("hc-scaffold-podman", (dir.path() / "rootfs").string(), {},
                      {"/bin/sh", "-c", "echo hello from podman"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "hello from podman\n");
}

}  // namespace
}  // namespace hostchanfs::testing::oci
