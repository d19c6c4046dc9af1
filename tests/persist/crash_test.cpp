// Deterministic crash points, in real processes: a forked child attaches to the region
// (its memfds inherited), arms the crash point k and runs one mutation, dying by SIGKILL
// at its k-th change (before it, or just after it). The parent attaches (recovery), checks
// every invariant (deep: free pages are holes too) and asserts the mutation is wholly
// there or wholly absent; for every k from 1 until the mutation completes, both variants.
// Once a k has left the mutation there, every later k must too (the commit point is one).
#include <signal.h>

#include <functional>
#include <stdexcept>

#include <gtest/gtest.h>

#include "shm/persist/crash_point.hpp"
#include "tests/persist/fixture.hpp"
#include "tests/support/child_process.hpp"

namespace hostchanfs::shm::persist::testing {
namespace {

using crash_point::When;
using hostchanfs::testing::ChildProcess;

struct Scenario {
  std::function<void(Region&)> build;  // the state before: deterministic
  std::function<void(Region&)> op;     // the mutation: commits
};

struct Reference {
  Snapshot pre, post;
  std::uint64_t steps = 0;
};

Reference reference(const Scenario& sc) {
  TestRegion r;
  sc.build(r.region());
  Reference ref;
  ref.pre = snapshot(r.region());
  crash_point::arm(~0ull, When::kBefore);
  sc.op(r.region());
  ref.steps = crash_point::steps();
  crash_point::disarm();
  ref.post = snapshot(r.region());
  return ref;
}

// Run the op in a child that dies at change k (k > steps: it completes).
int run_op_in_child(const TestRegion& r, const Scenario& sc, std::uint64_t k, When when) {
  auto child = ChildProcess::fork([&] {
    auto region = Region::attach(r.dup_meta(), {r.data_fd()}, r.schema());
    if (!region) return 3;
    crash_point::arm(k, when);
    sc.op(*region.value());
    return 0;
  });
  return child.wait();
}

// After a death: attach, check deeply, and say whether the op is there (true) or not.
bool recovered_state(TestRegion& r, const Reference& ref, const std::string& where) {
  auto attached = r.reattach();
  EXPECT_TRUE(attached) << where << ": " << attached.error().what;
  if (!attached) return false;
  auto deep = r->check(CheckLevel::kDeep);
  EXPECT_TRUE(deep) << where << ": " << deep.error().what;
  Snapshot got = snapshot(r.region());
  if (got == ref.post) return true;
  EXPECT_EQ(got, ref.pre) << where << ": neither before nor after the op";
  return false;
}

struct SweepCounts {
  std::uint64_t steps = 0, absent = 0, present = 0;
};

SweepCounts sweep(const Scenario& sc) {
  Reference ref = reference(sc);
  EXPECT_NE(ref.pre, ref.post) << "the op changes nothing";
  SweepCounts counts{ref.steps, 0, 0};
  bool seen_present = false;
  for (std::uint64_t k = 1; k <= ref.steps + 1; ++k) {
    for (When when : {When::kBefore, When::kAfter}) {
      if (k > ref.steps && when == When::kAfter) continue;
      std::string where = "k=" + std::to_string(k) + (when == When::kAfter ? "+" : "") + " of " +
                          std::to_string(ref.steps);
      TestRegion r;
      sc.build(r.region());
      r.close();
      int status = run_op_in_child(r, sc, k, when);
      EXPECT_EQ(status, k <= ref.steps ? 128 + SIGKILL : 0) << where;
      bool present = recovered_state(r, ref, where);
      if (::testing::Test::HasFailure()) return counts;
      EXPECT_TRUE(present || !seen_present) << where << ": rolled back after an earlier k had committed";
      seen_present |= present;
      ++(present ? counts.present : counts.absent);
    }
  }
  EXPECT_GT(counts.absent, 0u);
  EXPECT_GT(counts.present, 0u);
  return counts;
}

// --- the mutations ---------------------------------------------------------------------

// The deep tree filled with even keys, from the top down, up to the point where one more
// insert (in front of every node on its path: each one shifts its entries) splits every
// node on the path and grows a new root; that insert is the op.
struct InsertThatGrowsTheTree {
  std::uint64_t key = 0;
  std::uint32_t height = 0;
  void build(Region& r) {
    U64Tree t(r, kSmall);
    for (std::uint64_t k = 100000;; k -= 2) {
      Tx tx(r);
      std::uint32_t h = t.height();
      (void)t.insert(tx, k, k * 3);
      if (t.height() > h && h >= 4) {  // this one would grow it: leave it to the op
        tx.abort();
        key = k;
        height = h;
        return;
      }
      tx.commit();
    }
  }
};

TEST(Crash, InsertSplittingEveryLevelIsAllOrNothing) {
  InsertThatGrowsTheTree grow;
  Scenario sc{[&](Region& r) { grow.build(r); }, [&](Region& r) { insert_small_and_count(r, grow.key); }};
  SweepCounts c = sweep(sc);
  EXPECT_GE(c.steps, 10u);
  std::printf("insert splitting %u levels: %llu changes\n", grow.height, static_cast<unsigned long long>(c.steps));
}

// The same sweep through the environment variable, in a program started fresh.
TEST(Crash, TheEnvironmentSwitchKillsAtEveryStepToo) {
  InsertThatGrowsTheTree grow;
  Scenario sc{[&](Region& r) { grow.build(r); }, [&](Region& r) { insert_small_and_count(r, grow.key); }};
  Reference ref = reference(sc);
  std::string key = std::to_string(grow.key);
  for (std::uint64_t k = 1; k <= ref.steps + 1; ++k) {
    for (const char* suffix : {"", "+"}) {
      if (k > ref.steps && *suffix) continue;
      TestRegion r;
      sc.build(r.region());
      r.close();
      std::string at = std::to_string(k) + suffix;
      ::setenv("HOSTCHANFS_CRASH_AT", at.c_str(), 1);
      auto child = ChildProcess::spawn({PERSIST_CRASH_CHILD, "insert-small", key}, {{r.meta_fd(), 3}, {r.data_fd(), 4}});
      ::unsetenv("HOSTCHANFS_CRASH_AT");
      EXPECT_EQ(child.wait(), k <= ref.steps ? 128 + SIGKILL : 0) << at;
      recovered_state(r, ref, "HOSTCHANFS_CRASH_AT=" + at);
      if (HasFailure()) return;
    }
  }
}

// A tree of keys 0..n, thinned until one erase merges up to the root and lowers the
// height; that erase is the op.
struct EraseThatShrinksTheTree {
  std::uint64_t key = 0;
  void build(Region& r) {
    U64Tree t(r, kSmall);
    {
      Tx tx(r);
      for (std::uint64_t k = 0; k < 200; ++k) (void)t.insert(tx, k, k);
      tx.commit();
    }
    for (std::uint64_t last = 199;; --last) {
      for (auto c = t.begin(); c.valid(); c.next()) {
        std::uint64_t k = c.key();
        Tx probe(r);
        std::uint32_t h = t.height();
        t.erase(probe, k);
        bool shrinks = t.height() < h && h >= 3;
        probe.abort();
        if (shrinks) {
          key = k;
          return;
        }
        c = t.lower_bound(k);  // the probe's rollback left the tree as it was
      }
      Tx tx(r);
      t.erase(tx, last);
      tx.commit();
    }
  }
};

TEST(Crash, EraseMergingEveryLevelIsAllOrNothing) {
  EraseThatShrinksTheTree shrink;
  Scenario sc{[&](Region& r) { shrink.build(r); },
              [&](Region& r) {
                Tx tx(r);
                U64Tree t(r, kSmall);
                if (!t.erase(tx, shrink.key)) throw std::runtime_error("the op did not find what the build made");
                tx.commit();
              }};
  SweepCounts c = sweep(sc);
  EXPECT_GE(c.steps, 8u);
}

// Files that own data pages; a bounded range erase drops 40 of them and frees their pages
// (punched after the commit point: a death there is finished by recovery).
TEST(Crash, RangeEraseFreeingDataPagesIsAllOrNothing) {
  Scenario sc{[](Region& r) {
                for (std::uint64_t k = 0; k < 300; ++k) apply(r, Op{Op::kCreateFile, 0, k, k * 7, 0});
                for (std::uint64_t k = 0; k < 300; k += 5) apply(r, Op{Op::kInsertWide, 0, k, k, 0});
              },
              [](Region& r) {
                Tx tx(r);
                FileTree files(r, kFiles);
                PagePool data(r, kData);
                auto res = files.erase_range(tx, 50, 250, 40, [&](std::uint64_t, std::uint32_t page) { data.free(tx, page); });
                if (res.erased != 40 || res.done) throw std::runtime_error("the op did not find what the build made");
                auto& u = r.user_as<TestUser>();
                tx.set(u.counter, u.counter + 40);
                tx.commit();
              }};
  SweepCounts c = sweep(sc);
  EXPECT_GE(c.steps, 40u);
}

// Slots, data pages and two trees in one tx: the allocators' rollback (holes again) and
// their deferred frees.
TEST(Crash, AllocatorsAndTreesInOneTxAreAllOrNothing) {
  auto name = [](Region& r, Tx& tx, std::uint64_t key) {
    SlotTable names(r, kNames);
    auto s = names.alloc(tx);
    if (!s) throw std::runtime_error("the op did not find what the build made");
    NameSlot n{key, 3, {'k', 'e', 'y'}};
    tx.fresh(names.slot(*s), &n, sizeof n);
  };
  Scenario sc{[&](Region& r) {
                for (std::uint64_t k = 0; k < 20; ++k) apply(r, Op{Op::kCreateFile, 0, k, k + 100, 0});
                Tx tx(r);
                for (std::uint64_t k = 0; k < 30; ++k) name(r, tx, k);
                tx.commit();
              },
              [&](Region& r) {
                Tx tx(r);
                SlotTable names(r, kNames);
                FileTree files(r, kFiles);
                PagePool data(r, kData);
                // Frees first: what this tx frees it must not hand out again.
                names.free(tx, 3);
                names.free(tx, 17);
                data.free(tx, *files.erase(tx, 4));
                for (std::uint64_t k = 100; k < 120; ++k) name(r, tx, k);  // a new slot page
                for (std::uint64_t k = 500; k < 503; ++k) {
                  auto page = data.alloc(tx);
                  write_tag(r, *page, k);
                  if (!files.insert(tx, k, *page)) throw std::runtime_error("the op did not find what the build made");
                }
                U64Tree small(r, kSmall);
                if (!small.insert(tx, 9, 9)) throw std::runtime_error("the op did not find what the build made");
                auto& u = r.user_as<TestUser>();
                tx.set(u.sum, u.sum + 1);
                tx.commit();
              }};
  sweep(sc);
}

// A commit whose freed pages make one run across two areas: the names table's last slot
// page and the arena's first page, which follows it. Recovery after a death among the
// punches must take the merged run for what it is.
TEST(Crash, APunchRunAcrossTwoAreasIsFinished) {
  Scenario sc{[](Region& r) {
                insert_small_and_count(r, 1);  // the tree's root leaf: arena page 0
                SlotTable names(r, kNames);
                Tx tx(r);
                for (std::uint32_t i = 0; i < names.capacity(); ++i) {
                  auto s = names.alloc(tx);
                  NameSlot n{i, 1, {'n'}};
                  tx.fresh(names.slot(*s), &n, sizeof n);
                }
                tx.commit();
              },
              [](Region& r) {
                SlotTable names(r, kNames);
                U64Tree small(r, kSmall);
                const std::uint32_t per_page = kPage / sizeof(NameSlot);
                Tx tx(r);
                for (std::uint32_t s = (names.capacity() - 1) / per_page * per_page; s < names.capacity(); ++s)
                  names.free(tx, s);
                if (!small.erase(tx, 1)) throw std::runtime_error("no key 1");
                tx.commit();
                if (r.offset_of(names.slot(names.capacity() - 1)) / kPage + 1 != r.header().arena_offset / kPage)
                  throw std::runtime_error("the table's last page does not touch the arena");
              }};
  sweep(sc);
}

// A death during recovery itself: the op dies at k, a second process dies at step j of
// its recovery (replaying the undo log, or finishing a commit's punches), and a third
// attaches: the op is still wholly there or wholly absent.
TEST(Crash, ADeathDuringRecoveryIsRecoveredToo) {
  Scenario sc{[](Region& r) {
                for (std::uint64_t k = 0; k < 100; ++k) apply(r, Op{Op::kCreateFile, 0, k, k, 0});
              },
              [](Region& r) {
                Tx tx(r);
                FileTree files(r, kFiles);
                PagePool data(r, kData);
                files.erase_range(tx, 10, 30, 20, [&](std::uint64_t, std::uint32_t page) { data.free(tx, page); });
                U64Tree small(r, kSmall);
                for (std::uint64_t k = 0; k < 30; ++k) (void)small.insert(tx, k, k);
                tx.commit();
              }};
  Reference ref = reference(sc);
  std::uint64_t recoveries = 0;
  for (std::uint64_t k : {ref.steps / 3, ref.steps / 2, ref.steps - 8, ref.steps - 1}) {
    for (std::uint64_t j = 1;; ++j) {
      TestRegion r;
      sc.build(r.region());
      r.close();
      ASSERT_EQ(run_op_in_child(r, sc, k, When::kAfter), 128 + SIGKILL);
      auto child = ChildProcess::fork([&] {
        crash_point::arm(j, When::kBefore);
        return Region::attach(r.dup_meta(), {r.data_fd()}, r.schema()) ? 0 : 3;
      });
      int status = child.wait();
      std::string where = "op killed at " + std::to_string(k) + "+, recovery at " + std::to_string(j);
      recovered_state(r, ref, where);
      ASSERT_FALSE(HasFailure());
      if (status == 0) break;  // the recovery ran to its end
      ASSERT_EQ(status, 128 + SIGKILL) << where;
      ++recoveries;
    }
  }
  EXPECT_GT(recoveries, 10u);
}

}  // namespace
}  // namespace hostchanfs::shm::persist::testing
