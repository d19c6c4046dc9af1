// Pod-scoped channels: the containers of one pod (the same io.kubernetes.cri-o.SandboxID)
// share one channel, through `podman kube play` of a real Pod YAML, and it goes with the
// pod at `podman kube down`. Images are made here from busybox (no registry); kube play
// builds its pause image from the host's catatonit.
#include <gtest/gtest.h>

#include <string>

#include "tests/oci/oci_support.hpp"
#include "tests/support/fuse_required.hpp"

namespace hostchanfs::testing::oci {
namespace {

constexpr const char* kImage = "localhost/hc-busybox:latest";

// A container command that ends at once on SIGTERM (busybox sh as pid 1 would ignore it,
// and podman would wait its stop timeout), after `script`.
std::string then_wait(const std::string& script) {
  return script + "; trap 'exit 0' TERM; sleep 1000 & wait $!";
}

std::string pod_yaml(const std::string& pod, const std::string& channel) {
  return "apiVersion: v1\n"
         "kind: Pod\n"
         "metadata:\n"
         "  name: " + pod + "\n"
         "  annotations:\n"
         "    io.hostchanfs.channel: " + channel + "\n"
         "spec:\n"
         "  restartPolicy: Never\n"
         "  containers:\n"
         "  - name: writer\n"
         "    image: " + kImage + "\n"
         "    command: [\"/bin/sh\", \"-c\", \"" +
         then_wait("echo from-writer > /chan/w") + "\"]\n"
         "  - name: reader\n"
         "    image: " + kImage + "\n"
         "    command: [\"/bin/sh\", \"-c\", \"" +
         then_wait("until [ -f /chan/w ]; do sleep 0.1; done; cat /chan/w > /chan/r") + "\"]\n";
}

class PodChannel : public ::testing::Test {
 protected:
  void SetUp() override {
    HOSTCHANFS_REQUIRE_FUSE();
    PrivateHost::get().start_controller();
    make_busybox_rootfs(dir_ / "rootfs");
    podman_.import_image(dir_ / "rootfs", kImage);
  }
  TempDir dir_;
  Podman podman_{dir_ / "podman", Podman::Cgroups::kForPods};
};

// Both containers bind the one channel the first made: the reader sees what the writer
// wrote; the pod stops and starts with its data; `podman kube down` removes it.
TEST_F(PodChannel, KubePlaySharesOneChannelKubeDownRemovesIt) {
  auto host_path = dir_ / "chan";
  auto yaml = dir_ / "pod.yaml";
  write_file(yaml, pod_yaml("hc-pod", host_path.string() + ":/chan:rw:1M"));
  podman_.adopt_pod("hc-pod");
  auto played = podman_.podman({"kube", "play", yaml.string()});
  ASSERT_EQ(played.exit_code, 0) << played.describe();

  ASSERT_TRUE(eventually([&] { return read_file(host_path / "r") == "from-writer\n"; }))
      << read_file(host_path / "r");
  auto channel = channel_at(host_path);
  ASSERT_TRUE(channel);
  EXPECT_EQ(channel->owner_id.rfind("pod:", 0), 0u) << channel->owner_id;
  EXPECT_EQ(channel->members.size(), 2u);
  auto infra = podman_.podman({"pod", "inspect", "--format", "{{.InfraContainerID}}", "hc-pod"});
  ASSERT_EQ(infra.exit_code, 0) << infra.describe();
  EXPECT_EQ(channel->owner_id + "\n", "pod:" + infra.out);

  auto stopped = podman_.podman({"pod", "stop", "hc-pod"});
  ASSERT_EQ(stopped.exit_code, 0) << stopped.describe();
  EXPECT_TRUE(is_fuse_mount(host_path));
  EXPECT_EQ(read_file(host_path / "r"), "from-writer\n");

  auto down = podman_.podman({"kube", "down", yaml.string()});
  ASSERT_EQ(down.exit_code, 0) << down.describe();
  EXPECT_TRUE(eventually([&] { return !channel_at(host_path); }));
  EXPECT_FALSE(stdfs::exists(host_path));
}

// Two containers of one pod asking for the same host path with different specs: the
// second is refused with one line and does not start; the first keeps its channel.
TEST_F(PodChannel, ADifferentSpecInOnePodIsRefused) {
  auto host_path = dir_ / "chan";
  const std::string pod = "hc-pod-mismatch";
  podman_.adopt_pod(pod);
  auto made = podman_.podman({"pod", "create", "--name", pod, "--network", "none"});
  ASSERT_EQ(made.exit_code, 0) << made.describe();
  auto run = [&](const std::string& name, const std::string& spec) {
    podman_.adopt(name);
    return podman_.podman({"run", "--detach", "--pod", pod, "--name", name, "--annotation",
                           "io.hostchanfs.channel=" + spec, kImage, "/bin/sh", "-c",
                           then_wait("true")});
  };
  auto first = run("hc-first", host_path.string() + ":/chan:rw:1M");
  ASSERT_EQ(first.exit_code, 0) << first.describe();
  auto second = run("hc-second", host_path.string() + ":/chan:ro:1M");
  EXPECT_NE(second.exit_code, 0) << second.describe();
  EXPECT_NE(second.err.find("give every container of one pod the same channel spec"),
            std::string::npos)
      << second.describe();
  auto channel = channel_at(host_path);
  ASSERT_TRUE(channel);
  EXPECT_FALSE(channel->spec.read_only);
  EXPECT_EQ(channel->members.size(), 1u);

  auto removed = podman_.podman({"pod", "rm", "--force", "--time", "10", pod});
  EXPECT_EQ(removed.exit_code, 0) << removed.describe();
  EXPECT_TRUE(eventually([&] { return !channel_at(host_path); }));
  EXPECT_FALSE(stdfs::exists(host_path));
}

}  // namespace
}  // namespace hostchanfs::testing::oci
