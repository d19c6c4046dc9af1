// The undo log: commit keeps, rollback restores (in this process and at attach), a range
// is logged once per tx, fresh memory is not logged, and every misuse aborts loudly with
// a message that names it. The crash switch's environment variable, in a real process.
#include <signal.h>
#include <stdlib.h>

#include <atomic>
#include <random>
#include <shared_mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "shm/persist/crash_point.hpp"
#include "tests/persist/fixture.hpp"
#include "tests/support/child_process.hpp"

namespace hostchanfs::shm::persist::testing {
namespace {

using hostchanfs::testing::ChildProcess;

TEST(Tx, CommittedChangesSurviveAnAttach) {
  TestRegion r;
  auto& u = r->user_as<TestUser>();
  {
    Tx tx(r.region());
    tx.set(u.counter, std::uint64_t{42});
    std::uint64_t words[3] = {1, 2, 3};
    tx.write(u.reserved, words, sizeof words);
    tx.move(&u.reserved[1], &u.reserved[0], 3 * sizeof(std::uint64_t));  // overlapping
    tx.zero(&u.reserved[5], sizeof(std::uint64_t));
    tx.commit();
  }
  ASSERT_TRUE(r.reattach());
  const auto& v = r->user_as<TestUser>();
  EXPECT_EQ(v.counter, 42u);
  EXPECT_EQ(v.reserved[0], 1u);
  EXPECT_EQ(v.reserved[1], 1u);
  EXPECT_EQ(v.reserved[2], 2u);
  EXPECT_EQ(v.reserved[3], 3u);
  EXPECT_EQ(r->stats().recovered_records, 0u);
}

TEST(Tx, LeavingTheScopeWithoutCommitRollsBack) {
  TestRegion r;
  auto& u = r->user_as<TestUser>();
  {
    Tx tx(r.region());
    tx.set(u.counter, std::uint64_t{5});
    tx.set(u.sum, std::uint64_t{9});
    tx.commit();
  }
  {
    Tx tx(r.region());
    tx.set(u.counter, std::uint64_t{6});
    tx.move(&u.sum, &u.counter, sizeof u.sum);
    tx.zero(&u.counter, sizeof u.counter);
    EXPECT_EQ(u.counter, 0u);
    EXPECT_EQ(u.sum, 6u);
  }
  EXPECT_EQ(u.counter, 5u);
  EXPECT_EQ(u.sum, 9u);
  EXPECT_EQ(r->stats().rollbacks, 1u);
  EXPECT_TRUE(r->check());
}

TEST(Tx, ARangeIsLoggedOncePerTx) {
  TestRegion r;
  auto& u = r->user_as<TestUser>();
  Tx tx(r.region());
  for (std::uint64_t i = 0; i < 10000; ++i) tx.set(u.counter, i);
  EXPECT_EQ(tx.log_used(), Tx::record_bytes(8));
  tx.set(u.sum, std::uint64_t{1});  // another range: one more record
  EXPECT_EQ(tx.log_used(), 2 * Tx::record_bytes(8));
  tx.abort();
  EXPECT_EQ(u.counter, 0u);
}

// Past the first ranges a tx keeps in a short list, the rest go to the table: each is
// logged once either way, a range written again longer is logged again (once), and a
// rollback restores all of them.
TEST(Tx, ManyRangesAreEachLoggedOnceAndRolledBack) {
  TestRegion r;
  PagePool arena(r.region(), 0);
  std::uint32_t page = 0;
  {
    Tx tx(r.region());
    auto p = arena.alloc(tx);
    ASSERT_TRUE(p);
    page = *p;
    std::vector<std::uint64_t> words(kPage / 8);
    for (std::size_t i = 0; i < words.size(); ++i) words[i] = i;
    tx.fresh(arena.page(page), words.data(), kPage);
    tx.commit();
  }
  auto* w = reinterpret_cast<std::uint64_t*>(arena.page(page));
  constexpr std::size_t kRanges = 300;  // far more than the short list holds
  Tx tx(r.region());
  for (int pass = 0; pass < 3; ++pass)
    for (std::size_t i = 0; i < kRanges; ++i) tx.set(w[2 * i], std::uint64_t{1000 + i});
  EXPECT_EQ(tx.log_used(), kRanges * Tx::record_bytes(8));
  const std::uint64_t pair[2] = {7, 7};
  tx.write(&w[0], pair, sizeof pair);           // in the short list, now longer
  tx.write(&w[2 * (kRanges - 1)], pair, sizeof pair);  // in the table, now longer
  tx.write(&w[0], pair, sizeof pair);
  tx.write(&w[2 * (kRanges - 1)], pair, sizeof pair);
  EXPECT_EQ(tx.log_used(), kRanges * Tx::record_bytes(8) + 2 * Tx::record_bytes(16));
  tx.abort();
  for (std::size_t i = 0; i < kPage / 8; ++i) ASSERT_EQ(w[i], i) << "word " << i;
}

TEST(Tx, WritesToMemoryAllocatedInTheTxAreNotLogged) {
  TestRegion r;
  PagePool arena(r.region(), 0);
  Tx tx(r.region());
  auto page = arena.alloc(tx);
  ASSERT_TRUE(page);
  std::size_t before = tx.log_used();
  std::vector<std::byte> bytes(kPage, std::byte{0x5a});
  tx.write(arena.page(*page), bytes.data(), bytes.size());
  tx.fresh(arena.page(*page), bytes.data(), 100);
  EXPECT_EQ(tx.log_used(), before);
  tx.commit();
}

TEST(Tx, ConcurrentTxsAreSerialized) {
  TestRegion r;
  auto& u = r->user_as<TestUser>();
  constexpr int kThreads = 4, kTxs = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kTxs; ++i) {
        Tx tx(r.region());
        tx.set(u.counter, u.counter + 1);
        tx.set(u.reserved[t], u.reserved[t] + 1);
        if (i % 7 == 0) continue;  // rolled back
        tx.commit();
      }
    });
  for (auto& th : threads) th.join();
  std::uint64_t per_thread = kTxs - (kTxs + 6) / 7;
  EXPECT_EQ(u.counter, kThreads * per_thread);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(u.reserved[t], per_thread);
}

// Readers walk a tree under the caller's lock (shared) while writers change it in txs under
// the same lock (exclusive): the pattern the store follows. Run under TSan.
TEST(Tx, ReadersUnderTheCallersLockSeeWholeTxs) {
  TestRegion r;
  U64Tree t(r.region(), kSmall);
  std::shared_mutex lock;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> torn{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 2; ++i)
    readers.emplace_back([&] {
      while (!stop.load()) {
        {
          std::shared_lock lk(lock);
          // Each tx inserts or erases the pair (k, k + 1) together: never one without the other.
          for (std::uint64_t k = 0; k < 200; k += 2)
            if (t.contains(k) != t.contains(k + 1)) ++torn;
        }
        std::this_thread::yield();  // glibc's shared_mutex prefers readers: let the writer in
      }
    });
  std::mt19937_64 rng(8);
  for (int i = 0; i < 3000; ++i) {
    std::unique_lock lk(lock);
    std::uint64_t k = rng() % 100 * 2;
    Tx tx(r.region());
    if (t.contains(k)) {
      t.erase(tx, k);
      t.erase(tx, k + 1);
    } else {
      ASSERT_TRUE(t.insert(tx, k, 0));
      ASSERT_TRUE(t.insert(tx, k + 1, 0));
    }
    if (i % 5 == 0) continue;  // rolled back, under the lock
    tx.commit();
  }
  stop = true;
  for (auto& th : readers) th.join();
  EXPECT_EQ(torn.load(), 0u);
  EXPECT_TRUE(r->check());
}

// --- misuse aborts loudly (the region stays recoverable: see the crash tests) ---

TEST(TxDeathTest, AnOverflowingTxAbortsAndSaysWhy) {
  TestOptions o;
  o.log_bytes = 16 << 10;
  TestRegion r(o);
  U64Tree wide(r.region(), kWide);
  {
    Tx tx(r.region());  // a tree built in one tx is all fresh pages: nothing to log
    for (std::uint64_t k = 0; k < 1000; ++k) ASSERT_TRUE(wide.insert(tx, 1000000 + k, k));
    tx.commit();
  }
  EXPECT_DEATH(
      {
        Tx tx(r.region());  // each insert in front shifts a whole leaf
        for (std::uint64_t k = 0; k < 100000; ++k) (void)wide.insert(tx, 100000 - k, k);
      },
      "tx log overflow.*must be chunked");
}

TEST(TxDeathTest, LoggingAVolatileCellAborts) {
  TestRegion r;
  SlotTable names(r.region(), kNames);
  EXPECT_DEATH(
      {
        Tx tx(r.region());
        auto slot = names.alloc(tx);
        std::uint64_t one = 1;
        tx.write(&names.cell(*slot, 0), &one, sizeof one);
      },
      "volatile cells");
}

TEST(TxDeathTest, ANestedTxAborts) {
  TestRegion r;
  EXPECT_DEATH(
      {
        Tx outer(r.region());
        Tx inner(r.region());
      },
      "nested transactions");
}

TEST(TxDeathTest, FreshOnMemoryNotAllocatedInTheTxAborts) {
  TestRegion r;
  auto& u = r->user_as<TestUser>();
  EXPECT_DEATH(
      {
        Tx tx(r.region());
        std::uint64_t v = 1;
        tx.fresh(&u.counter, &v, sizeof v);
      },
      "did not allocate");
}

TEST(TxDeathTest, AWriteOutsideTheRegionAborts) {
  TestRegion r;
  EXPECT_DEATH(
      {
        Tx tx(r.region());
        std::uint64_t outside = 0;
        tx.set(outside, std::uint64_t{1});
      },
      "outside the region");
}

// --- the crash switch, read from the environment by a real process at its start ---

// Run the crash child on the region, then settle the region here (recovery), so that the
// next child's count starts at its own first change.
int run_child(TestRegion& r, const char* crash_at, const char* op, const char* arg) {
  if (crash_at) {
    ::setenv("HOSTCHANFS_CRASH_AT", crash_at, 1);
  } else {
    ::unsetenv("HOSTCHANFS_CRASH_AT");
  }
  auto child = ChildProcess::spawn({PERSIST_CRASH_CHILD, op, arg}, {{r.meta_fd(), 3}, {r.data_fd(), 4}});
  ::unsetenv("HOSTCHANFS_CRASH_AT");
  int status = child.wait();
  auto settled = r.reattach();
  EXPECT_TRUE(settled) << settled.error().what;
  r.close();
  return status;
}

TEST(CrashPoint, TheEnvironmentVariableKillsAtTheKthChange) {
  TestRegion r;
  r.close();
  // Each tx of "count" is two changes (the write, the commit point).
  EXPECT_EQ(run_child(r, nullptr, "count", "3"), 0);
  EXPECT_EQ(run_child(r, "4", "count", "3"), 128 + SIGKILL);   // before tx 2's commit: 1 more
  EXPECT_EQ(run_child(r, "3+", "count", "3"), 128 + SIGKILL);  // after tx 2's write: rolled back
  EXPECT_EQ(run_child(r, "4+", "count", "3"), 128 + SIGKILL);  // after tx 2's commit: 2 more
  ASSERT_TRUE(r.reattach());
  EXPECT_EQ(r->user_as<TestUser>().counter, 3u + 1 + 1 + 2);
}

TEST(CrashPoint, ABadValueIsAUsageError) {
  TestRegion r;
  r.close();
  EXPECT_EQ(run_child(r, "x3", "count", "1"), 2);
  EXPECT_EQ(run_child(r, "0", "count", "1"), 2);
}

TEST(CrashPoint, ArmedInProcessItCountsWithoutDyingAtMax) {
  TestRegion r;
  crash_point::arm(~0ull, crash_point::When::kBefore);
  insert_small_and_count(r.region(), 1);
  std::uint64_t steps = crash_point::steps();
  crash_point::disarm();
  EXPECT_GT(steps, 2u);
  EXPECT_EQ(crash_point::steps(), 0u);
}

}  // namespace
}  // namespace hostchanfs::shm::persist::testing
