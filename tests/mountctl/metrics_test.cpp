// The channels' Prometheus metrics on real mounts: `hostchanfs metrics` checked by
// promtool (Debian's prometheus package) and read for a channel's usage, requests and
// errors; `controller --metrics-listen` scraped by a real Prometheus server on loopback,
// started and stopped by pid here; a listen address that cannot be served refused.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <regex>
#include <string>

#include "sys/child.hpp"
#include "tests/mountctl/harness.hpp"
#include "tests/oci/oci_support.hpp"

namespace hostchanfs::mountctl {
namespace {

using testing::Cli;
using testing::ChildProcess;
using testing::eventually;
using testing::hostchanfs;
using testing::oci::CommandOptions;
using testing::oci::run_command;

using MetricsTest = testing::CheckedControllerTest;

constexpr std::size_t kThreeMiB = 3 * 1024 * 1024;

void write_bytes(const std::string& path, std::size_t n) {
  std::ofstream out(path, std::ios::binary);
  out << std::string(n, 'x');
  out.close();
  ASSERT_TRUE(out) << path;
}

// A loopback port nothing listens on now (the kernel's choice).
int free_port() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) < 0) {
    throw std::runtime_error("no free loopback port: " + errno_text(errno));
  }
  return ntohs(addr.sin_port);
}

// The sample line of `metric` for the channel at `host` (with `more` labels after its own),
// or "" when there is none.
std::string sample(const std::string& text, const std::string& metric, const std::string& host,
                   const std::string& more = "") {
  std::string head = metric + "{host_path=\"" + host + "\",owner=\"";
  for (std::size_t at = text.find(head); at != std::string::npos; at = text.find(head, at + 1)) {
    if (at > 0 && text[at - 1] != '\n') continue;
    std::string line = text.substr(at, text.find('\n', at) - at);
    if (more.empty() ? line.find("\",", head.size()) == std::string::npos
                     : line.find("\"," + more + "}") != std::string::npos) {
      return line;
    }
  }
  return "";
}

std::string value_of(const std::string& line) { return line.substr(line.rfind(' ') + 1); }

TEST_F(MetricsTest, UsageRequestsAndErrorsPassPromtool) {
  std::string host = world_->path("chan");
  std::string small = world_->path("small");
  ASSERT_EQ(hostchanfs({"mount", host + ":/c:rw:16M"}).status, 0);
  ASSERT_EQ(hostchanfs({"mount", small + ":/c:rw:64k"}).status, 0);
  write_bytes(host + "/three-mib", kThreeMiB);
  {
    UniqueFd fd(::open((small + "/full").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    ASSERT_TRUE(fd);
    std::string block(4096, 'y');
    ssize_t n = 0;
    while ((n = ::write(fd.get(), block.data(), block.size())) > 0) {
    }
    ASSERT_EQ(errno, ENOSPC);
  }

  auto r = hostchanfs({"metrics"});
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string& text = r.out;
  EXPECT_EQ(value_of(sample(text, "hostchanfs_channel_bytes_used", host)), "3145728") << text;
  EXPECT_EQ(value_of(sample(text, "hostchanfs_channel_bytes_quota", host)), "16777216") << text;
  EXPECT_EQ(value_of(sample(text, "hostchanfs_channel_bytes_used", small)), "65536") << text;
  EXPECT_EQ(value_of(sample(text, "hostchanfs_channel_inodes_used", host)), "2") << text;
  EXPECT_NE(value_of(sample(text, "hostchanfs_channel_inodes_limit", host)), "0") << text;
  EXPECT_EQ(value_of(sample(text, "hostchanfs_channel_state", host, "state=\"running\"")), "1") << text;
  EXPECT_EQ(value_of(sample(text, "hostchanfs_channel_daemon_restarts_total", host)), "0") << text;
  EXPECT_NE(sample(text, "hostchanfs_channel_requests_total", host, "op=\"create\""), "") << text;
  EXPECT_NE(sample(text, "hostchanfs_channel_errors_total", small, "errno=\"ENOSPC\""), "") << text;
  EXPECT_EQ(sample(text, "hostchanfs_channel_errors_total", host, "errno=\"ENOSPC\""), "") << text;
  EXPECT_NE(text.find("hostchanfs_channel_request_duration_seconds_bucket{host_path=\"" + host), std::string::npos);

  CommandOptions in;
  in.stdin_text = text;
  auto checked = run_command({"promtool", "check", "metrics"}, in);
  EXPECT_EQ(checked.exit_code, 0) << checked.describe();
}

// A replacement controller takes the request counters back from the daemon.
TEST_F(MetricsTest, ARestartedControllerKeepsTheCounters) {
  std::string host = world_->path("chan");
  ASSERT_EQ(hostchanfs({"mount", host + ":/c:rw:1M"}).status, 0);
  write_bytes(host + "/f", 4096);
  world_->kill_controller();
  auto r = hostchanfs({"metrics"});  // a new controller, from the registry
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(value_of(sample(r.out, "hostchanfs_channel_requests_total", host, "op=\"create\"")), "1")
      << r.out << world_->controller_log();
  EXPECT_EQ(hostchanfs({"umount", host}).status, 0);
}

TEST_F(MetricsTest, APrometheusServerScrapesTheController) {
  int metrics_port = free_port();
  std::string listen = "127.0.0.1:" + std::to_string(metrics_port);
  Cli controller({"controller", "--run-dir", world_->run_dir(), "--metrics-listen", listen});
  ASSERT_TRUE(controller.eventually([&] {
    return run_command({"busybox", "wget", "-q", "-O", "/dev/null", "http://" + listen + "/metrics"}).exit_code == 0;
  })) << controller.err_so_far();

  std::string host = world_->path("chan");
  ASSERT_EQ(hostchanfs({"mount", host + ":/c:rw:16M"}).status, 0);
  write_bytes(host + "/three-mib", kThreeMiB);

  std::string dir = world_->path("prometheus");
  std::filesystem::create_directories(dir);
  {
    std::ofstream(dir + "/prometheus.yml") << "global:\n  scrape_interval: 1s\n"
                                              "scrape_configs:\n  - job_name: hostchanfs\n"
                                              "    static_configs:\n      - targets: ['" + listen + "']\n";
  }
  std::string web = "127.0.0.1:" + std::to_string(free_port());
  UniqueFd log(::open((dir + "/log").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  Exec exec({"prometheus", "--config.file=" + dir + "/prometheus.yml",
             "--storage.tsdb.path=" + dir + "/data", "--web.listen-address=" + web});
  exec.search_path().place_fd(log.get(), STDOUT_FILENO).place_fd(log.get(), STDERR_FILENO);
  ChildProcess prometheus = ChildProcess::spawn(exec);

  std::string query = "hostchanfs_channel_bytes_used{host_path=\"" + host + "\"}";
  std::string answer;
  EXPECT_TRUE(eventually([&] {
    answer = run_command({"promtool", "query", "instant", "http://" + web, query}).out;
    return answer.find("=> 3145728") != std::string::npos;
  })) << answer << read_small_file(dir + "/log");
  EXPECT_NE(answer.find("job=\"hostchanfs\""), std::string::npos) << answer;

  EXPECT_TRUE(prometheus.terminate(std::chrono::seconds(30)));
  EXPECT_EQ(hostchanfs({"umount", host}).status, 0);
  EXPECT_TRUE(world_->stop_controller());
  EXPECT_EQ(controller.wait().status, 0);
}

TEST_F(MetricsTest, AnAddressThatCannotBeServedIsRefusedInOneLine) {
  auto r = hostchanfs({"controller", "--run-dir", world_->run_dir(), "--metrics-listen", "127.0.0.1:99999"});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("hostchanfs controller: cannot serve metrics at 127.0.0.1:99999 ("), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(testing::exists(world_->run_dir() + "/controller.sock"));
}

}  // namespace
}  // namespace hostchanfs::mountctl
