// The request parser and what the controller prints for people and engines, in-process:
// text checks, parse_request under a fuzzer (random and mutated lines, bounded in count
// and time: it must never throw, and every refusal must be a clean line), the JSON
// encoder of answers, and the `--mount` flag as podman and docker split it.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include "mountctl/commands.hpp"
#include "mountctl/protocol.hpp"
#include "mountctl/text.hpp"
#include "tests/mountctl/fuzz.hpp"

namespace hostchanfs::mountctl {
namespace {

using nlohmann::json;

TEST(Text, RefusesWhatIsNotUtf8OrHoldsControlCharacters) {
  EXPECT_FALSE(text_problem("/tmp/caf\xc3\xa9"));
  EXPECT_FALSE(text_problem("\xf0\x9f\x98\x80"));
  EXPECT_EQ(text_problem("a\xc3"), "is not UTF-8 (byte 0xc3 at offset 1)");
  EXPECT_EQ(text_problem("\xc0\xaf"), "is not UTF-8 (byte 0xc0 at offset 0)") << "overlong";
  EXPECT_EQ(text_problem("\xed\xa0\x80"), "is not UTF-8 (byte 0xed at offset 0)") << "surrogate";
  EXPECT_EQ(text_problem("\xf4\x90\x80\x80"), "is not UTF-8 (byte 0xf4 at offset 0)") << "above U+10FFFF";
  EXPECT_EQ(text_problem(std::string("a\0b", 3)), "holds a control character (U+0000 at offset 1)");
  EXPECT_EQ(text_problem("a\x7f"), "holds a control character (U+007F at offset 1)");
  EXPECT_EQ(text_problem("a\xc2\x9b"), "holds a control character (U+009B at offset 1)") << "C1 CSI";
  EXPECT_EQ(printable("a\nb\xff\\c\xc3\xa9"), "a\\x0ab\\xff\\x5cc\xc3\xa9");
  EXPECT_EQ(printable(std::string(10, 'x'), 4), "xxxx...");
  EXPECT_EQ(printable("xxxx", 4), "xxxx");
}

// What the OCI hook sends for pods, through the encoder and back.
TEST(Protocol, JoinAndLeaveRoundTrip) {
  CreateRequest join;
  join.spec = {"/c", "/in", false, 4096};
  join.owner = Owner{"pod:ab", std::nullopt};
  join.member = Member{"oci:c1", "/s/userdata"};
  auto back = decode_request(encode_request(join));
  ASSERT_TRUE(back) << back.error().message;
  ASSERT_TRUE(std::get<CreateRequest>(back.value()).member);
  EXPECT_EQ(*std::get<CreateRequest>(back.value()).member, *join.member);

  auto leave = decode_request(encode_request(LeaveRequest{"/c", "pod:ab", "oci:c1"}));
  ASSERT_TRUE(leave) << leave.error().message;
  EXPECT_EQ(std::get<LeaveRequest>(leave.value()).member_id, "oci:c1");
  for (auto outcome : {LeaveOutcome::kRemoved, LeaveOutcome::kLeft, LeaveOutcome::kKept,
                       LeaveOutcome::kNoChannel, LeaveOutcome::kNotOurs}) {
    auto answer = decode_answer<LeaveRequest>(encode_answer(outcome));
    ASSERT_TRUE(answer) << answer.error().message;
    EXPECT_EQ(answer.value(), outcome);
  }

  json relative = encode_request(join);
  relative["member"]["bundle"] = "s/userdata";
  auto refused = decode_request(relative);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message, "bad request: \"bundle\" is not an absolute path");
}

TEST(Protocol, ARequestThatIsNotUtf8IsRefusedWithoutItsBytes) {
  auto got = parse_request("{\"op\":\"nope\xc3\"}");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().message, "bad request: not UTF-8");
  got = parse_request("{\"op\":");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().message, "bad request: not JSON (error at byte 7)");
  got = parse_request(R"({"op":"expose","host_path":"/x","pid":-1,"rootfs":"/"})");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().message, "bad request: \"pid\" is not a number from 0 to 2147483647");
  got = parse_request(R"({"op":"remove","host_path":"/a\u0000b"})");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().message, "bad request: \"host_path\" holds a control character (U+0000 at offset 2)");
  // An answer that should never hold bad UTF-8 is still one valid line.
  std::string line = encode_line(encode_error(Error::failure("x\xff")));
  EXPECT_EQ(line.back(), '\n');
  EXPECT_TRUE(json::accept(line));
}

TEST(Protocol, FuzzedLinesNeverThrowAndAreRefusedInOneCleanLine) {
  testing::RequestFuzzer fuzz("/tmp/fuzz");
  std::cout << "fuzz seed " << fuzz.seed() << "\n";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  int parsed = 0, lines = 0;
  for (; lines < 100000 && std::chrono::steady_clock::now() < deadline; ++lines) {
    std::string line = fuzz.next();
    auto got = parse_request(line);  // a throw fails the test
    std::string answer = encode_line(got ? json{{"ok", true}} : encode_error(got.error()));
    ASSERT_TRUE(json::accept(answer)) << printable(line);
    if (!got) {
      ASSERT_FALSE(text_problem(got.error().message)) << printable(got.error().message);
      continue;
    }
    ++parsed;
    // What parses encodes again, and parses back to the same request.
    auto again = parse_request(encode_request(got.value()).dump());
    ASSERT_TRUE(again) << printable(line);
    ASSERT_EQ(encode_request(again.value()), encode_request(got.value()));
  }
  std::cout << "fuzz: " << lines << " lines, " << parsed << " parsed\n";
}

ChannelSpec spec_at(std::string host) { return ChannelSpec{std::move(host), "/x", false, 4096}; }

// Go's encoding/csv, as podman and docker read --mount, after a POSIX shell has taken the
// word apart: fields split at commas outside quotes, "" inside quotes is one quote.
std::vector<std::string> engine_fields(const std::string& flag) {
  std::string word = flag.substr(std::string("--mount ").size());
  if (word.front() == '\'') {  // the shell's single quotes, with '\'' for a quote
    std::string unquoted;
    for (std::size_t i = 1; i + 1 < word.size(); ++i) {
      if (word.compare(i, 4, "'\\''") == 0) {
        unquoted += '\'';
        i += 3;
      } else {
        unquoted += word[i];
      }
    }
    word = unquoted;
  }
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (std::size_t i = 0; i < word.size(); ++i) {
    char c = word[i];
    if (quoted && c == '"' && i + 1 < word.size() && word[i + 1] == '"') {
      fields.back() += '"';
      ++i;
    } else if (c == '"') {
      quoted = !quoted;
    } else if (c == ',' && !quoted) {
      fields.emplace_back();
    } else {
      fields.back() += c;
    }
  }
  return fields;
}

TEST(MountFlag, IsQuotedTheWayEnginesSplitIt) {
  EXPECT_EQ(mount_flag(spec_at("/tmp/plain")), "--mount type=bind,src=/tmp/plain,dst=/x,ro=false");
  EXPECT_EQ(mount_flag(spec_at("/tmp/a,dst=/etc")), "--mount 'type=bind,\"src=/tmp/a,dst=/etc\",dst=/x,ro=false'");
  for (std::string host : {"/tmp/a,dst=/etc", "/tmp/q\"uo,te", "/tmp/it's here", "/tmp/a=b", "/tmp/$(id)"}) {
    EXPECT_EQ(engine_fields(mount_flag(spec_at(host))),
              (std::vector<std::string>{"type=bind", "src=" + host, "dst=/x", "ro=false"}))
        << mount_flag(spec_at(host));
  }
}

}  // namespace
}  // namespace hostchanfs::mountctl
