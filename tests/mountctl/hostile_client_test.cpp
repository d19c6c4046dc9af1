// Clients of the controller that misbehave, on a real controller: malformed and non-UTF-8
// requests, a 64 MiB line, a client that never reads its answers, and a fuzzer. None may
// end the controller or make another client wait: every answer is one line of valid JSON,
// and the bounds below only turn a hang into a failure (no timing is asserted).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "mountctl/protocol.hpp"
#include "mountctl/text.hpp"
#include "tests/mountctl/fuzz.hpp"
#include "tests/mountctl/harness.hpp"

namespace hostchanfs::testing {
namespace {

using json = nlohmann::json;

class HostileClientTest : public CheckedControllerTest {
 protected:
  void SetUp() override {
    CheckedControllerTest::SetUp();
    if (!world_) return;
    // A controller with one channel, so that list and remove have something to look at.
    chan_ = world_->path("chan");
    ASSERT_EQ(hostchanfs({"mount", chan_ + ":/x:rw:1M"}).status, 0);
    pid_ = world_->controller_pid().value_or(0);
  }
  void TearDown() override {
    if (world_) {
      EXPECT_EQ(world_->controller_pid(), pid_) << "the controller was replaced";
      EXPECT_EQ(hostchanfs({"umount", chan_}).status, 0);
    }
    CheckedControllerTest::TearDown();
  }

  // The answer to `line` (sent with its newline) must be one line of JSON: its object.
  json ask(RawClient& client, const std::string& line) {
    EXPECT_TRUE(client.send(line + "\n"));
    auto answer = client.read_line();
    if (!answer) {
      ADD_FAILURE() << "no answer to " << mountctl::printable(line, 200);
      return json::object();
    }
    json reply = json::parse(*answer, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(reply.is_object() && reply.contains("ok") && reply["ok"].is_boolean())
        << mountctl::printable(*answer) << " for " << mountctl::printable(line, 200);
    return reply.is_object() ? reply : json::object();
  }
  bool still_serves() {
    RawClient client(world_->run_dir());
    return ask(client, R"({"op":"ping"})").value("ok", false);
  }

  std::string chan_;
  pid_t pid_ = 0;
};

TEST_F(HostileClientTest, MalformedRequestsGetOneLineOfJsonAndNothingEchoedRaw) {
  const std::vector<std::string> bad = {
      "{\"op\":\"nope\xc3\"}", "\xff\xfe\xfd", "", "garbage", "[]", "{}", "null", "{\"op\":1}",
      "{\"op\":\"ping\"", "{\"op\":\"create\"}",
      R"({"op":"create","spec":{"host_path":"/x","container_path":"/y","read_only":false,"size_bytes":-1},"owner":{"id":"t"}})",
      R"({"op":"create","spec":{"host_path":"/a\nb","container_path":"/y","read_only":false,"size_bytes":4096},"owner":{"id":"t"}})",
      R"({"op":"remove","host_path":"\u0000/etc"})", R"({"op":"remove","host_path":"\ud800"})",
      R"({"op":"expose","host_path":"/x","pid":99999999999999999999,"rootfs":"/"})",
      R"({"op":"expose","host_path":"/x","pid":-5,"rootfs":"/"})",
      "{\"op\":\"\x1b[2J\"}", std::string(30000, '[') + std::string(30000, ']'),
      R"({"op":"list","extra":{"deep":[1,2,{"x":"\u00e9"}]}})"};
  RawClient client(world_->run_dir());
  for (const std::string& line : bad) {
    json reply = ask(client, line);
    if (line.find("list") != std::string::npos) continue;  // extra fields are fine
    EXPECT_EQ(reply.value("ok", true), false) << mountctl::printable(line, 200);
    EXPECT_EQ(reply.value("kind", ""), "bad_input") << mountctl::printable(line, 200);
    std::string message = reply.value("message", "");
    EXPECT_FALSE(mountctl::text_problem(message)) << mountctl::printable(message);
  }
  EXPECT_EQ(ask(client, R"({"op":"nope"})")["message"],
            "bad request: unknown op \"nope\" (want create, expose, remove, leave, list, ping or metrics)");
  EXPECT_TRUE(ask(client, R"({"op":"ping"})").value("ok", false)) << "the connection still serves";
  EXPECT_TRUE(still_serves());
}

TEST_F(HostileClientTest, ALineOfOver64KiBIsRefusedEvenWhenItComesWhole) {
  std::string ping = R"({"op":"ping"})";
  RawClient at_limit(world_->run_dir());
  EXPECT_TRUE(ask(at_limit, ping + std::string(65536 - ping.size(), ' ')).value("ok", false))
      << "a line of 64 KiB is a request";
  RawClient over(world_->run_dir());
  ASSERT_TRUE(over.send(ping + std::string(65537 - ping.size(), ' ') + "\n" + ping + "\n"));
  auto answer = over.read_line();
  ASSERT_TRUE(answer);
  EXPECT_EQ(json::parse(*answer)["message"], "bad request: a line over 65536 bytes: the connection is closed");
  EXPECT_FALSE(over.read_line()) << "nothing after it is answered";
}

// The controller's peak resident memory so far, in KiB.
std::size_t peak_kib(pid_t pid) {
  std::string status = read_small_file("/proc/" + std::to_string(pid) + "/status");
  return std::stoul(status.substr(status.find("VmHWM:") + 6));
}

TEST_F(HostileClientTest, ASixtyFourMiBLineClosesItsConnectionOnly) {
  // Against its own peak before the line (a sanitized controller starts far higher).
  const std::size_t before = peak_kib(pid_);
  RawClient client(world_->run_dir());
  const std::string chunk(1 << 20, 'x');
  std::size_t sent = 0;
  while (sent < (64u << 20) && client.send(chunk)) sent += chunk.size();
  EXPECT_LT(sent, 64u << 20) << "the controller kept reading a line without end";
  auto answer = client.read_line();
  ASSERT_TRUE(answer) << "no word before the connection was closed";
  EXPECT_EQ(json::parse(*answer)["message"], "bad request: a line over 65536 bytes: the connection is closed");
  EXPECT_FALSE(client.read_line()) << "closed after that";
  EXPECT_LT(peak_kib(pid_) - before, 32u * 1024) << "KiB: the controller grew by the 64 MiB line";
  EXPECT_TRUE(still_serves());
}

// A client asks and asks and never reads its answers, until its socket is full both ways
// (a controller that writes answers blocking would be stuck on it from here on). Another
// client must still get answers, and the one that does not read is dropped.
TEST_F(HostileClientTest, AClientThatNeverReadsStallsNobodyAndIsDropped) {
  using Sent = RawClient::Sent;
  RawClient lazy(world_->run_dir());
  std::string pings;
  for (int i = 0; i < 400; ++i) pings += "{\"op\":\"ping\"}\n";
  std::size_t asked = 0;
  Sent sent = Sent::kAll;
  while (asked < 20000 && (sent = lazy.send_within(pings, std::chrono::seconds(2))) == Sent::kAll) asked += 400;
  ASSERT_NE(sent, Sent::kClosed) << "dropped before it asked 20000 times";

  RawClient other(world_->run_dir());
  ASSERT_TRUE(other.send("{\"op\":\"ping\"}\n"));
  auto answer = other.read_line(std::chrono::seconds(10));  // the bound turns a hang into a failure
  ASSERT_TRUE(answer) << "a client that does not read stalled another one";
  EXPECT_TRUE(json::parse(*answer)["ok"]);

  // It goes on asking: once its unread answers pass the bound, it is dropped.
  while (asked < 2'000'000 && (sent = lazy.send_within(pings, std::chrono::seconds(10))) == Sent::kAll) asked += 400;
  EXPECT_EQ(sent, Sent::kClosed) << "never dropped (" << asked << " asked)";
  std::size_t answers = 0;
  while (lazy.read_line(std::chrono::seconds(10))) ++answers;
  EXPECT_LT(answers, asked) << "it was dropped with answers unread";
  EXPECT_TRUE(still_serves());
}

TEST_F(HostileClientTest, FuzzedRequestsNeverEndTheController) {
  RequestFuzzer fuzz(world_->path("fuzz"));
  std::cout << "fuzz seed " << fuzz.seed() << "\n";
  RawClient client(world_->run_dir());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  int sent = 0;
  for (int tried = 0; tried < 3000 && std::chrono::steady_clock::now() < deadline; ++tried) {
    std::string line = fuzz.next();
    // What parses is acted on for real: only what stays inside this test's directory.
    if (!fuzz.safe_to_send(line)) continue;
    ask(client, line);
    ++sent;
    if (::testing::Test::HasFailure()) break;
  }
  std::cout << "fuzz: " << sent << " requests sent\n";
  EXPECT_TRUE(still_serves());
}

}  // namespace
}  // namespace hostchanfs::testing
