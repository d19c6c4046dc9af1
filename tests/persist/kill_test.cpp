// Random kills under load: a child attaches and runs random mutations as fast as it can,
// telling the parent through a pipe what it is about to do and, after each commit, that it
// is done. The parent kills it by SIGKILL at a random moment, attaches (recovery), checks
// every invariant deeply, and asserts the region holds exactly what the child acknowledged,
// plus perhaps the one mutation that was in flight, wholly. Sixty rounds on one region.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "tests/persist/fixture.hpp"
#include "tests/support/child_process.hpp"

namespace hostchanfs::shm::persist::testing {
namespace {

using hostchanfs::testing::ChildProcess;

struct Message {
  enum Type : std::uint32_t { kIntent, kDone, kFailed } type;
  std::uint32_t pad;
  std::uint64_t seq;
  Op op;
};
static_assert(sizeof(Message) <= PIPE_BUF);

constexpr std::uint64_t kKeys = 4096;

[[noreturn]] void child_loop(const TestRegion& r, int out, std::uint64_t seed) {
  auto region = Region::attach(r.dup_meta(), {r.data_fd()}, r.schema());
  if (!region) ::_exit(3);
  std::mt19937_64 rng(seed);
  for (std::uint64_t seq = 0;; ++seq) {
    Message m{Message::kIntent, 0, seq, random_op(rng, kKeys)};
    if (::write(out, &m, sizeof m) != sizeof m) ::_exit(4);
    m.type = apply(*region.value(), m.op) ? Message::kDone : Message::kFailed;
    if (::write(out, &m, sizeof m) != sizeof m) ::_exit(4);
  }
}

TEST(Kill, RandomKillsUnderLoadLoseNothingAcknowledged) {
  TestOptions o;
  o.arena_nodes = 8192;
  TestRegion r(o);
  r.close();
  Model model;
  std::mt19937_64 rng(2024);
  std::uint64_t acknowledged = 0, in_flight_applied = 0, in_flight_absent = 0, inside_a_tx = 0;
  for (int round = 0; round < 60; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    UniqueFd in(fds[0]), out(fds[1]);
    // Room for many ops: a child that blocks on a full pipe would only die between txs.
    ::fcntl(out.get(), F_SETPIPE_SZ, 4 << 20);
    std::uint64_t seed = rng();
    auto child = ChildProcess::fork([&] {
      in.reset();
      child_loop(r, out.get(), seed);
      return 0;
    });
    out.reset();
    // Let it run: a random number of acknowledged ops, then a random pause.
    std::uint64_t wait_for = rng() % 3000, seen = 0;
    std::optional<Op> pending;
    auto take = [&](const Message& m) {
      if (m.type == Message::kIntent) {
        pending = m.op;
        return;
      }
      if (m.type == Message::kDone) {
        model.apply(m.op);
        ++acknowledged;
      }
      pending.reset();
    };
    Message m{};
    while (seen < wait_for && ::read(in.get(), &m, sizeof m) == sizeof m) {
      take(m);
      if (m.type != Message::kIntent) ++seen;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 1000));
    child.signal(SIGKILL);
    ASSERT_EQ(child.wait(), 128 + SIGKILL) << "round " << round << ": the child ended on its own";
    while (::read(in.get(), &m, sizeof m) == sizeof m) take(m);

    auto attached = r.reattach();
    ASSERT_TRUE(attached) << "round " << round << ": " << attached.error().what;
    if (r->stats().recovered_records) ++inside_a_tx;
    auto deep = r->check(CheckLevel::kDeep);
    ASSERT_TRUE(deep) << "round " << round << ": " << deep.error().what;
    Snapshot got = snapshot(r.region());
    EXPECT_EQ(got.data_in_use, got.files.size()) << "round " << round;
    Snapshot want = model.as_snapshot(got);
    if (got != want && pending) {
      model.apply(*pending);  // the op in flight had committed before the kill
      want = model.as_snapshot(got);
      ++in_flight_applied;
    } else if (pending) {
      ++in_flight_absent;
    }
    ASSERT_EQ(got, want) << "round " << round << " (an acknowledged op lost, or half an op)";
    r.close();
  }
  std::printf("%llu ops acknowledged; in flight at the kill: %llu there, %llu not; %llu kills inside a tx\n",
              static_cast<unsigned long long>(acknowledged), static_cast<unsigned long long>(in_flight_applied),
              static_cast<unsigned long long>(in_flight_absent), static_cast<unsigned long long>(inside_a_tx));
  EXPECT_GT(acknowledged, 1000u);
  // The child spends much of its time inside txs and the kills land at random instants:
  // sixty kills that all miss every tx would mean the test tests nothing.
  EXPECT_GT(inside_a_tx, 0u);
}

}  // namespace
}  // namespace hostchanfs::shm::persist::testing
