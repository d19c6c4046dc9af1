// hostchanfs_persist_bench: the crash-safe persistence layer alone (shm/persist), in the
// store's proposed schema, so the store's cost on it can be weighed before the move: what a
// tx costs, what the B+tree's operations cost (each in its own tx, as the store would do
// them), and a create and a lookup made of the layer's parts (compare BM_Create and
// BM_Lookup of hostchanfs_store_bench, today's store). Google Benchmark; not a test.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "shm/persist/store_schema.hpp"
#include "sys/memfd.hpp"

namespace hostchanfs::bench {
namespace {

namespace P = shm::persist;
namespace S = shm::persist::store;

constexpr std::uint64_t kQuotaPages = 1 << 18;  // 1 GiB
constexpr std::uint64_t kInodes = 1 << 20;

struct Fixture {
  UniqueFd data;
  std::unique_ptr<P::Region> region;
  bool ok = false;

  explicit Fixture(benchmark::State& state) {
    auto meta = make_memfd("bench-meta", 0);
    auto d = make_memfd("bench-data", kQuotaPages * P::kPage);
    if (!meta || !d) {
      state.SkipWithError("memfd failed");
      return;
    }
    data = std::move(d.value());
    auto r = P::Region::create(std::move(meta.value()), {data.get()}, S::schema(kQuotaPages, kInodes));
    if (!r) {
      state.SkipWithError(r.error().what.c_str());
      return;
    }
    region = std::move(r.value());
    ok = true;
  }
  P::Region& r() { return *region; }
};

// `changes(tx)` in one committed tx (a benchmark's setup).
template <class Changes>
void in_one_tx(P::Region& r, Changes&& changes) {
  P::Tx tx(r);
  changes(tx);
  tx.commit();
}

std::vector<S::PageKey> random_page_keys(std::size_t n) {
  std::mt19937_64 rng(1);
  std::vector<S::PageKey> keys(n);
  for (auto& k : keys) k = S::page_key(static_cast<std::uint32_t>(rng() % 4096), 0, rng() >> 13);
  return keys;
}

// One tx per iteration, `body` its changes.
template <class Body>
void txs(benchmark::State& state, Body&& body) {
  Fixture f(state);
  if (!f.ok) return;
  auto& sb = f.r().user_as<S::Superblock>();
  for (auto _ : state) {
    P::Tx tx(f.r());
    body(tx, sb);
    tx.commit();
  }
}

void BM_TxEmpty(benchmark::State& state) {
  txs(state, [](P::Tx&, S::Superblock&) {});
}
BENCHMARK(BM_TxEmpty);

// One logged 8-byte change, committed: the least a mutation costs.
void BM_TxOneWrite(benchmark::State& state) {
  txs(state, [](P::Tx& tx, S::Superblock& sb) { tx.set(sb.pages_used, sb.pages_used + 1); });
}
BENCHMARK(BM_TxOneWrite);

// A tx of 16 logged writes to distinct words: the cost per logged change.
void BM_TxSixteenWrites(benchmark::State& state) {
  txs(state, [](P::Tx& tx, S::Superblock& sb) {
    for (auto& w : sb.reserved) tx.set(w, w + 1);
    tx.set(sb.pages_used, sb.pages_used + 1);
    tx.set(sb.inodes_used, sb.inodes_used + 1);
    tx.set(sb.dedupe_seq, sb.dedupe_seq + 1);
    tx.set(sb.quota_pages, sb.quota_pages);
    tx.set(sb.max_inodes, sb.max_inodes);
  });
}
BENCHMARK(BM_TxSixteenWrites);

// Page-map inserts of random keys into a tree that grows to 200k entries, one tx each.
void BM_TreeInsert(benchmark::State& state) {
  Fixture f(state);
  if (!f.ok) return;
  S::PageTree t(f.r(), S::kPages);
  auto keys = random_page_keys(200000);
  std::size_t i = 0;
  for (auto _ : state) {
    P::Tx tx(f.r());
    benchmark::DoNotOptimize(t.insert(tx, keys[i++ % keys.size()], 7u));
    tx.commit();
  }
  state.counters["entries"] = static_cast<double>(t.size());
}
BENCHMARK(BM_TreeInsert)->Iterations(200000);

// 100k entries; each iteration erases one and inserts another (two txs): the steady state
// of files coming and going.
void BM_TreeEraseInsert(benchmark::State& state) {
  Fixture f(state);
  if (!f.ok) return;
  S::PageTree t(f.r(), S::kPages);
  auto keys = random_page_keys(200000);
  in_one_tx(f.r(), [&](P::Tx& tx) {
    for (std::size_t i = 0; i < 100000; ++i) (void)t.insert(tx, keys[i], 1u);
  });
  std::size_t i = 0;
  for (auto _ : state) {
    in_one_tx(f.r(), [&](P::Tx& tx) { benchmark::DoNotOptimize(t.erase(tx, keys[i % 200000])); });
    in_one_tx(f.r(), [&](P::Tx& tx) { benchmark::DoNotOptimize(t.insert(tx, keys[(i + 100000) % 200000], 1u)); });
    ++i;
  }
  state.SetItemsProcessed(state.iterations() * 2);
}
BENCHMARK(BM_TreeEraseInsert);

void BM_TreeFind(benchmark::State& state) {
  Fixture f(state);
  if (!f.ok) return;
  S::PageTree t(f.r(), S::kPages);
  auto keys = random_page_keys(static_cast<std::size_t>(state.range(0)));
  in_one_tx(f.r(), [&](P::Tx& tx) {
    for (const auto& k : keys) (void)t.insert(tx, k, 1u);
  });
  std::size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(t.find(keys[i++ % keys.size()]));
}
BENCHMARK(BM_TreeFind)->Arg(1000)->Arg(100000)->Arg(1000000);

// A readdir page's worth: 64 entries from a lower_bound.
void BM_TreeScan64(benchmark::State& state) {
  Fixture f(state);
  if (!f.ok) return;
  S::CookieTree t(f.r(), S::kDirByCookie);
  in_one_tx(f.r(), [&](P::Tx& tx) {
    for (std::uint32_t c = 0; c < 100000; ++c) (void)t.insert(tx, S::DirCookieKey{1, 0, c}, c);
  });
  std::uint32_t start = 0;
  for (auto _ : state) {
    std::uint64_t sum = 0;
    auto c = t.lower_bound(S::DirCookieKey{1, 0, start});
    for (int n = 0; n < 64 && c.valid(); ++n, c.next()) sum += c.value();
    benchmark::DoNotOptimize(sum);
    start = (start + 64) % 99000;
  }
  state.SetItemsProcessed(state.iterations() * 64);
}
BENCHMARK(BM_TreeScan64);

// A range erase of a 1 GiB file's page map (262144 pages), chunked into txs of 4096.
void BM_TreeRangeErase(benchmark::State& state) {
  Fixture f(state);
  if (!f.ok) return;
  S::PageTree t(f.r(), S::kPages);
  for (auto _ : state) {
    state.PauseTiming();
    for (std::uint64_t base = 0; base < kQuotaPages; base += 16384)
      in_one_tx(f.r(), [&](P::Tx& tx) {
        for (std::uint64_t p = base; p < base + 16384; ++p) (void)t.insert(tx, S::page_key(9, 0, p), static_cast<std::uint32_t>(p));
      });
    state.ResumeTiming();
    for (bool done = false; !done;) {
      P::Tx tx(f.r());
      done = t.erase_range(tx, S::page_key(9, 0, 0), S::page_key(10, 0, 0), 4096, [](const S::PageKey&, std::uint32_t) {}).done;
      tx.commit();
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kQuotaPages));
}
BENCHMARK(BM_TreeRangeErase)->Unit(benchmark::kMillisecond)->Iterations(3);

// What a create would cost on the layer: an inode slot and a dirent slot written fresh,
// both directory indexes, the counters; one tx. The names are in one directory.
void BM_CreateLike(benchmark::State& state) {
  Fixture f(state);
  if (!f.ok) return;
  P::Region& r = f.r();
  P::SlotTable inodes(r, S::kInodes), dirents(r, S::kDirents);
  S::CookieTree by_cookie(r, S::kDirByCookie);
  S::NameTree by_name(r, S::kDirByName);
  auto& sb = r.user_as<S::Superblock>();
  std::uint64_t n = 0;
  for (auto _ : state) {
    std::string name = "f" + std::to_string(n);
    P::Tx tx(r);
    auto ino = inodes.alloc(tx);
    auto slot = dirents.alloc(tx);
    if (!ino || !slot) return state.SkipWithError("table full");
    S::InodeRecord rec{};
    rec.mode = 0100644;
    rec.nlink = 1;
    tx.fresh(inodes.slot(*ino), &rec, sizeof rec);
    S::DirentRecord d{};
    d.cookie = n + 3;
    d.dir = 1;
    d.ino = *ino;
    d.name_len = static_cast<std::uint8_t>(name.size());
    std::memcpy(d.name, name.data(), name.size());
    tx.fresh(dirents.slot(*slot), &d, offsetof(S::DirentRecord, name) + name.size());
    std::uint64_t h = S::name_hash(r, name);
    (void)by_cookie.insert(tx, S::DirCookieKey{1, static_cast<std::uint32_t>(d.cookie >> 32), static_cast<std::uint32_t>(d.cookie)}, *slot);
    (void)by_name.insert(tx, S::DirNameKey{1, static_cast<std::uint32_t>(h >> 32), static_cast<std::uint32_t>(h), *slot}, P::Empty{});
    tx.set(sb.inodes_used, sb.inodes_used + 1);
    tx.commit();
    ++n;
  }
  state.counters["entries"] = static_cast<double>(by_name.size());
}
BENCHMARK(BM_CreateLike)->Iterations(200000);

// What a lookup would cost: hash the name, find its key in the name index, compare the
// name in the dirent slot, read the inode.
void BM_LookupLike(benchmark::State& state) {
  Fixture f(state);
  if (!f.ok) return;
  P::Region& r = f.r();
  P::SlotTable inodes(r, S::kInodes), dirents(r, S::kDirents);
  S::NameTree by_name(r, S::kDirByName);
  constexpr std::uint32_t kFiles = 1000;
  std::vector<std::string> names;
  {
    P::Tx tx(r);
    for (std::uint32_t i = 0; i < kFiles; ++i) {
      names.push_back("f" + std::to_string(i));
      auto slot = dirents.alloc(tx);
      auto ino = inodes.alloc(tx);
      S::DirentRecord d{};
      d.dir = 1;
      d.ino = *ino;
      d.name_len = static_cast<std::uint8_t>(names.back().size());
      std::memcpy(d.name, names.back().data(), names.back().size());
      tx.fresh(dirents.slot(*slot), &d, sizeof d);
      std::uint64_t h = S::name_hash(r, names.back());
      (void)by_name.insert(tx, S::DirNameKey{1, static_cast<std::uint32_t>(h >> 32), static_cast<std::uint32_t>(h), *slot}, P::Empty{});
    }
    tx.commit();
  }
  std::uint32_t i = 0;
  for (auto _ : state) {
    const std::string& name = names[i++ % kFiles];
    std::uint64_t h = S::name_hash(r, name);
    std::uint32_t found = 0;
    for (auto c = by_name.lower_bound(S::DirNameKey{1, static_cast<std::uint32_t>(h >> 32), static_cast<std::uint32_t>(h), 0});
         c.valid() && c.key().hash_lo == static_cast<std::uint32_t>(h) && c.key().hash_hi == static_cast<std::uint32_t>(h >> 32);
         c.next()) {
      const auto& d = dirents.at<S::DirentRecord>(c.key().slot);
      if (d.name_len == name.size() && std::memcmp(d.name, name.data(), name.size()) == 0) {
        found = d.ino;
        break;
      }
    }
    benchmark::DoNotOptimize(inodes.at<S::InodeRecord>(found).mode);
  }
}
BENCHMARK(BM_LookupLike);

// One item taken and given back, in two txs (a page's free punches it; so does a slot's
// when its page has no other live slot).
template <class Allocator>
void alloc_free_pairs(benchmark::State& state, std::size_t index) {
  Fixture f(state);
  if (!f.ok) return;
  Allocator a(f.r(), index);
  for (auto _ : state) {
    std::uint32_t item = 0;
    in_one_tx(f.r(), [&](P::Tx& tx) { item = *a.alloc(tx); });
    in_one_tx(f.r(), [&](P::Tx& tx) { a.free(tx, item); });
  }
  state.SetItemsProcessed(state.iterations() * 2);
}

void BM_SlotAllocFree(benchmark::State& state) { alloc_free_pairs<P::SlotTable>(state, S::kInodes); }
BENCHMARK(BM_SlotAllocFree);

void BM_PageAllocFree(benchmark::State& state) { alloc_free_pairs<P::PagePool>(state, S::kDataPool); }
BENCHMARK(BM_PageAllocFree);

}  // namespace
}  // namespace hostchanfs::bench

BENCHMARK_MAIN();
