// The B+tree against std::map: random inserts, erases, range erases, some txs rolled back,
// with the region's whole invariant check after every step (ordered, balanced, fill
// bounds, every page owned once) and the node count within its bound.
#include <algorithm>
#include <map>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "tests/persist/fixture.hpp"

namespace hostchanfs::shm::persist::testing {
namespace {

using Map = std::map<std::uint64_t, std::uint64_t>;

void expect_same(const U64Tree& t, const Map& m) {
  ASSERT_EQ(t.size(), m.size());
  auto c = t.begin();
  for (const auto& [k, v] : m) {
    ASSERT_TRUE(c.valid());
    ASSERT_EQ(c.key(), k);
    ASSERT_EQ(c.value(), v);
    c.next();
  }
  EXPECT_FALSE(c.valid());
}

// One random step on `tree`, mirrored in `model`; some steps roll back (and so does the
// model, through its own undo list).
void random_step(Region& r, std::size_t which, Map& model, std::mt19937_64& rng, std::uint64_t keys) {
  U64Tree t(r, which);
  std::vector<std::pair<std::uint64_t, std::optional<std::uint64_t>>> undo;  // key, old value
  auto erase_from_model = [&](Map::iterator it) {
    undo.emplace_back(it->first, it->second);
    return model.erase(it);
  };
  Tx tx(r);
  int ops = 1 + static_cast<int>(rng() % 3);  // several ops in one tx now and then
  for (int i = 0; i < ops; ++i) {
    std::uint64_t k = rng() % keys;
    // Inserts win over erases and small range erases, so the tree grows deep.
    std::uint64_t dice = rng() % 100;
    int kind = dice < 62 ? 0 : dice < 95 ? 1 : 2;
    switch (kind) {
      case 0: {
        std::uint64_t v = rng();
        auto in = t.insert(tx, k, v);
        ASSERT_TRUE(in) << "arena exhausted";
        bool inserted = model.emplace(k, v).second;
        EXPECT_EQ(in.value(), inserted);
        if (inserted) undo.emplace_back(k, std::nullopt);
        break;
      }
      case 1: {
        auto old = t.erase(tx, k);
        auto it = model.find(k);
        ASSERT_EQ(old.has_value(), it != model.end());
        if (old) {
          EXPECT_EQ(*old, it->second);
          erase_from_model(it);
        }
        break;
      }
      case 2: {
        std::uint64_t hi = k + 1 + rng() % (keys / 8 + 1), max = 1 + rng() % 16, seen = 0;
        auto res = t.erase_range(tx, k, hi, max, [&](std::uint64_t key, std::uint64_t value) {
          auto it = model.find(key);
          ASSERT_NE(it, model.end());
          EXPECT_EQ(it->second, value);
          EXPECT_GE(key, k);
          EXPECT_LT(key, hi);
          erase_from_model(it);
          ++seen;
        });
        EXPECT_EQ(res.erased, seen);
        EXPECT_LE(res.erased, max);
        auto left = model.lower_bound(k);
        EXPECT_EQ(res.done, left == model.end() || left->first >= hi);
        break;
      }
    }
  }
  if (rng() % 10 == 0) {
    tx.abort();
    for (auto u = undo.rbegin(); u != undo.rend(); ++u) {
      if (u->second) {
        model[u->first] = *u->second;
      } else {
        model.erase(u->first);
      }
    }
  } else {
    tx.commit();
  }
}

void run_random(std::size_t which, std::uint64_t steps, std::uint64_t keys, std::uint64_t check_every) {
  TestRegion r;
  Map model;
  std::mt19937_64 rng(which * 1000 + keys);
  U64Tree t(r.region(), which);
  std::uint32_t max_height = 0;
  for (std::uint64_t step = 0; step < steps; ++step) {
    ASSERT_NO_FATAL_FAILURE(random_step(r.region(), which, model, rng, keys));
    ASSERT_EQ(t.size(), model.size());
    ASSERT_LE(t.nodes(), t.max_nodes()) << "step " << step;
    max_height = std::max(max_height, t.height());
    if (step % check_every == 0) {
      auto ok = r->check();
      ASSERT_TRUE(ok) << "step " << step << ": " << ok.error().what;
    }
    if (step % 5000 == 0) {
      ASSERT_NO_FATAL_FAILURE(expect_same(t, model));
    }
  }
  EXPECT_GE(max_height, which == kSmall ? 5u : 2u) << "the test never made a deep tree";
  ASSERT_NO_FATAL_FAILURE(expect_same(t, model));
  // Everything survives an attach (recovery is a no-op, the check passes).
  ASSERT_TRUE(r.reattach());
  ASSERT_NO_FATAL_FAILURE(expect_same(U64Tree(r.region(), which), model));
}

TEST(BTree, RandomDeepTreeAgainstStdMapCheckedEveryStep) { run_random(kSmall, 100000, 1500, 1); }

TEST(BTree, RandomWideTreeAgainstStdMap) { run_random(kWide, 100000, 60000, 97); }

TEST(BTree, FindAndLowerBoundMatchTheMap) {
  TestRegion r;
  U64Tree t(r.region(), kSmall);
  Map model;
  std::mt19937_64 rng(3);
  {
    Tx tx(r.region());
    for (int i = 0; i < 3000; ++i) {
      std::uint64_t k = rng() % 10000 * 2;  // even keys: odd probes fall between
      ASSERT_TRUE(t.insert(tx, k, k + 1));
      model.emplace(k, k + 1);
    }
    tx.commit();
  }
  for (std::uint64_t probe = 0; probe < 20002; ++probe) {
    auto f = t.find(probe);
    auto it = model.find(probe);
    ASSERT_EQ(f.has_value(), it != model.end()) << probe;
    if (f) {
      ASSERT_EQ(*f, it->second);
    }
    auto c = t.lower_bound(probe);
    auto lb = model.lower_bound(probe);
    ASSERT_EQ(c.valid(), lb != model.end()) << probe;
    if (c.valid()) {
      ASSERT_EQ(c.key(), lb->first) << probe;
    }
  }
}

TEST(BTree, UpdateChangesOnlyTheValue) {
  TestRegion r;
  U64Tree t(r.region(), kWide);
  Tx tx(r.region());
  ASSERT_TRUE(t.insert(tx, 5, 50));
  EXPECT_TRUE(t.update(tx, 5, 51));
  EXPECT_FALSE(t.update(tx, 6, 60));
  tx.commit();
  EXPECT_EQ(t.find(5), std::optional<std::uint64_t>(51));
  EXPECT_FALSE(t.find(6));
}

TEST(BTree, InsertOfAnExistingKeyChangesNothing) {
  TestRegion r;
  U64Tree t(r.region(), kSmall);
  Tx tx(r.region());
  ASSERT_TRUE(t.insert(tx, 1, 10).value());
  EXPECT_FALSE(t.insert(tx, 1, 11).value());
  tx.commit();
  EXPECT_EQ(t.find(1), std::optional<std::uint64_t>(10));
  EXPECT_EQ(t.size(), 1u);
}

// Erase every other key of a big tree, then all but a few: the nodes shrink with the
// entries (merges give pages back), and the tree ends empty with no node at all.
TEST(BTree, ErasingGivesNodesBack) {
  TestRegion r;
  U64Tree t(r.region(), kSmall);
  PagePool arena(r.region(), 0);
  const std::uint64_t n = 4000;
  for (std::uint64_t base = 0; base < n; base += 500) {
    Tx tx(r.region());
    for (std::uint64_t k = base; k < base + 500; ++k) ASSERT_TRUE(t.insert(tx, k, k));
    tx.commit();
  }
  std::uint64_t full = t.nodes();
  for (std::uint64_t k = 0; k < n; k += 2) {
    Tx tx(r.region());
    ASSERT_TRUE(t.erase(tx, k));
    tx.commit();
    ASSERT_LE(t.nodes(), t.max_nodes());
  }
  EXPECT_LT(t.nodes(), full);
  ASSERT_TRUE(r->check());
  while (!t.empty()) {
    Tx tx(r.region());
    t.erase_range(tx, 0, n, 300, [](std::uint64_t, std::uint64_t) {});
    tx.commit();
  }
  EXPECT_EQ(t.nodes(), 0u);
  EXPECT_EQ(t.height(), 0u);
  EXPECT_EQ(arena.in_use(), 0u);
  auto deep = r->check(CheckLevel::kDeep);
  EXPECT_TRUE(deep) << deep.error().what;  // every freed node was punched
}

// A node moves the shorter side of a change, and a queue (appends at the back, removals
// from the front, as the cookie tree of a directory emptied in creation order sees) moves
// almost nothing: the undo log of one removal holds a few header words, not the half
// node (about 2 KB of a 255-entry leaf) that moving every entry behind it would log.
TEST(BTree, QueueOrderRemovalsLogAFewWords) {
  TestRegion r;
  U64Tree t(r.region(), kWide);
  const std::uint64_t n = 20000;
  {
    Tx tx(r.region());
    for (std::uint64_t k = 0; k < n; ++k) ASSERT_TRUE(t.insert(tx, k, k));
    tx.commit();
  }
  auto logged_per_op = [&](std::uint64_t first, std::uint64_t ops, bool append) {
    std::uint64_t bytes = 0;
    for (std::uint64_t k = first; k < first + ops; ++k) {
      Tx tx(r.region());
      EXPECT_EQ(t.erase(tx, k), std::optional<std::uint64_t>(k));
      if (append) {
        EXPECT_TRUE(t.insert(tx, n + k - first, n + k - first).value());
      }
      bytes += tx.log_used();
      tx.commit();
    }
    return bytes / ops;
  };
  const std::uint64_t removals = logged_per_op(0, n / 2, false);
  const std::uint64_t queue = logged_per_op(n / 2, n / 4, true);
  EXPECT_LT(removals, 256u) << "bytes logged per removal from the front";
  EXPECT_LT(queue, 512u) << "bytes logged per removal from the front and append at the back";
  auto ok = r->check();
  ASSERT_TRUE(ok) << ok.error().what;
  Map model;
  for (std::uint64_t k = 3 * n / 4; k < n + n / 4; ++k) model.emplace(k, k);
  ASSERT_NO_FATAL_FAILURE(expect_same(t, model));
  ASSERT_TRUE(r.reattach());
  ASSERT_NO_FATAL_FAILURE(expect_same(U64Tree(r.region(), kWide), model));
}

// Inserts at random keys move the shorter side too: a split leaves both halves room at
// either end (the old node's half where it was, the fresh one centred), so an insert
// moves about a quarter of a node on average, not half (each entry moved costs its 16
// bytes in the log).
TEST(BTree, RandomInsertsMoveTheShorterSide) {
  TestRegion r;
  U64Tree t(r.region(), kWide);
  std::mt19937_64 rng(3);
  Map model;
  std::uint64_t bytes = 0;
  const std::uint64_t n = 20000;
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::uint64_t k = rng();
    Tx tx(r.region());
    ASSERT_TRUE(t.insert(tx, k, i).value());
    bytes += tx.log_used();
    tx.commit();
    model.emplace(k, i);
  }
  EXPECT_LT(bytes / n, 1200u) << "bytes logged per random insert";
  // Appends (the cookie tree of a directory being filled) move nothing: a split puts all
  // of the fresh node's room at its back.
  bytes = 0;
  std::uint64_t top = ~std::uint64_t{0} - n;
  for (std::uint64_t i = 0; i < n; ++i) {
    Tx tx(r.region());
    ASSERT_TRUE(t.insert(tx, top + i, i).value());
    bytes += tx.log_used();
    tx.commit();
    model.emplace(top + i, i);
  }
  EXPECT_LT(bytes / n, 160u) << "bytes logged per append";
  auto ok = r->check();
  ASSERT_TRUE(ok) << ok.error().what;
  ASSERT_NO_FATAL_FAILURE(expect_same(t, model));
}

// A chunked range erase: each tx stops after max entries and says whether more are left.
TEST(BTree, RangeEraseInChunksOfBoundedTxs) {
  TestRegion r;
  U64Tree t(r.region(), kWide);
  {
    Tx tx(r.region());
    for (std::uint64_t k = 0; k < 20000; ++k) ASSERT_TRUE(t.insert(tx, k, k));
    tx.commit();
  }
  std::uint64_t txs = 0, erased = 0;
  for (bool done = false; !done; ++txs) {
    Tx tx(r.region());
    auto res = t.erase_range(tx, 1000, 19000, 1000, [](std::uint64_t, std::uint64_t) {});
    tx.commit();
    erased += res.erased;
    done = res.done;
    ASSERT_TRUE(r->check());
  }
  EXPECT_EQ(erased, 18000u);
  EXPECT_EQ(txs, 18u);  // the 18th chunk looks past its last entry and says done
  EXPECT_EQ(t.size(), 2000u);
  EXPECT_EQ(t.lower_bound(1000).key(), 19000u);
}

// A small log makes erase_range stop early on its own, before the log would overflow.
TEST(BTree, RangeEraseStopsBeforeTheLogOverflows) {
  TestOptions o;
  o.log_bytes = 64 << 10;
  TestRegion r(o);
  U64Tree t(r.region(), kSmall);
  for (std::uint64_t base = 0; base < 3000; base += 100) {
    Tx tx(r.region());
    for (std::uint64_t k = base; k < base + 100; ++k) ASSERT_TRUE(t.insert(tx, k, k));
    tx.commit();
  }
  std::uint64_t txs = 0;
  for (bool done = false; !done; ++txs) {
    Tx tx(r.region());
    auto res = t.erase_range(tx, 0, 3000, ~0ull, [](std::uint64_t, std::uint64_t) {});
    EXPECT_GT(res.erased, 0u);
    tx.commit();
    done = res.done;
  }
  EXPECT_GT(txs, 1u);
  EXPECT_TRUE(t.empty());
  EXPECT_TRUE(r->check());
}

// An arena too small: insert says ENOSPC before it changes anything.
TEST(BTree, InsertReportsAFullArenaWithoutChangingAnything) {
  TestOptions o;
  o.arena_nodes = 9;
  TestRegion r(o);
  U64Tree t(r.region(), kSmall);
  std::uint64_t k = 0;
  for (;; ++k) {
    Tx tx(r.region());
    auto in = t.insert(tx, k, k);
    if (!in) {
      EXPECT_EQ(in.error(), std::errc::no_space_on_device);
      tx.commit();  // nothing to commit: the failed insert changed nothing
      break;
    }
    tx.commit();
  }
  EXPECT_EQ(t.size(), k);
  auto ok = r->check();
  EXPECT_TRUE(ok) << ok.error().what;
  for (std::uint64_t i = 0; i < k; ++i) EXPECT_EQ(t.find(i), std::optional<std::uint64_t>(i));
}

// Keys of several 4-byte fields and no value, as the store's name index is.
TEST(BTree, CompositeKeysWithoutValues) {
  struct Key {
    std::uint32_t dir, hash_hi, hash_lo, slot;
    auto operator<=>(const Key&) const = default;
  };
  Schema s = test_schema();
  s.trees.push_back(tree_spec<Key, Empty>("names"));
  s.check = nullptr;  // no data pages here
  UniqueFd meta(make_memfd("persist-test", 0).value()), data(make_memfd("persist-test", 1024 * kPage).value());
  auto region = Region::create(std::move(meta), {data.get()}, s);
  ASSERT_TRUE(region) << region.error().what;
  Region& r = *region.value();
  BTree<Key, Empty> t(r, 3);
  EXPECT_EQ((BTree<Key, Empty>::kLeafMax), 255u);  // 16-byte entries: the value takes no room
  std::set<std::tuple<std::uint32_t, std::uint32_t, std::uint32_t, std::uint32_t>> model;
  std::mt19937_64 rng(5);
  Tx tx(r);
  for (int i = 0; i < 5000; ++i) {
    Key k{static_cast<std::uint32_t>(rng() % 7), static_cast<std::uint32_t>(rng()), static_cast<std::uint32_t>(rng() % 3),
          static_cast<std::uint32_t>(i)};
    ASSERT_TRUE(t.insert(tx, k, Empty{}).value());
    model.emplace(k.dir, k.hash_hi, k.hash_lo, k.slot);
  }
  tx.commit();
  ASSERT_TRUE(r.check());
  // All keys of directory 3, in order, through lower_bound.
  std::vector<std::uint32_t> got, want;
  for (auto c = t.lower_bound(Key{3, 0, 0, 0}); c.valid() && c.key().dir == 3; c.next()) got.push_back(c.key().slot);
  for (const auto& [d, h, l, slot] : model)
    if (d == 3) want.push_back(slot);
  EXPECT_EQ(got, want);
}

}  // namespace
}  // namespace hostchanfs::shm::persist::testing
