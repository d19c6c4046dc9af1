// hostchanfs_store_bench: the store alone (no FUSE, no kernel round trip), so that the
// cost of an operation in bench/run.sh can be split into store work and FUSE overhead.
// Google Benchmark; bench/run.sh runs it in the full run and summarizes it.
#include <fcntl.h>
#include <sys/stat.h>

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "shm/store.hpp"

namespace hostchanfs::bench {
namespace {

using shm::Ino;
using shm::kRootIno;
using shm::Store;

constexpr std::uint64_t kMiB = 1 << 20;
constexpr std::uint64_t kFileSpan = 64 * kMiB;  // writes and reads cycle over this much
constexpr shm::Caller kRootCaller{0, 0, true};  // bench/run.sh runs as root

// A fresh store big enough that no benchmark meets the quota or the inode limit (2M
// inodes need a quota of 8 GiB for their metadata to stay within its bound; both memfds
// are sparse: only what a benchmark writes costs memory).
std::unique_ptr<Store> make_store(benchmark::State& state) {
  shm::StoreOptions opts;
  opts.size_bytes = 8192 * kMiB;
  opts.max_inodes = 1 << 21;
  auto store = Store::create(opts);
  if (!store) {
    state.SkipWithError("Store::create failed");
    return nullptr;
  }
  return std::move(store.value());
}

std::string name_of(std::uint64_t i) { return "f" + std::to_string(i); }

// A regular file in the root, opened; its lookup count is the caller's to drop.
Ino make_file(benchmark::State& state, Store& store, const std::string& name) {
  auto attr = store.mknod(kRootIno, name, S_IFREG | 0644, 0, kRootCaller);
  if (!attr || !store.open(attr.value().ino)) {
    state.SkipWithError("mknod/open failed");
    return 0;
  }
  return attr.value().ino;
}

bool write_at(Store& store, Ino ino, std::uint64_t offset, std::span<const std::byte> data) {
  auto n = store.write(ino, offset, data, kRootCaller);
  return n && n.value() == data.size();
}

// Lookups of state.range(0) files of one directory, in a shuffled order: with 200,000
// the name index no longer fits in the caches, as in a daemon whose request's kernel work
// pushed it out.
void BM_Lookup(benchmark::State& state) {
  auto store = make_store(state);
  if (!store) return;
  const auto kFiles = static_cast<std::uint64_t>(state.range(0));
  std::vector<Ino> inos;
  for (std::uint64_t i = 0; i < kFiles; ++i) {
    auto attr = store->mknod(kRootIno, name_of(i), S_IFREG | 0644, 0, kRootCaller);
    if (!attr) return state.SkipWithError("mknod failed");
    inos.push_back(attr.value().ino);
  }
  std::vector<std::uint64_t> order(kFiles);
  for (std::uint64_t i = 0; i < kFiles; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937_64(1));
  std::vector<std::string> names;
  for (std::uint64_t i = 0; i < kFiles; ++i) names.push_back(name_of(order[i]));
  std::vector<std::uint64_t> lookups(kFiles, 1);
  std::uint64_t i = 0;
  for (auto _ : state) {
    auto attr = store->lookup(kRootIno, names[i % kFiles]);
    if (!attr) return state.SkipWithError("lookup failed");
    benchmark::DoNotOptimize(attr.value().ino);
    ++lookups[order[i % kFiles]];
    ++i;
  }
  for (std::uint64_t f = 0; f < kFiles; ++f) store->forget(inos[f], lookups[f]);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Lookup)->Arg(1000)->Arg(200000);

void BM_Create(benchmark::State& state) {
  auto store = make_store(state);
  if (!store) return;
  std::vector<Ino> inos;
  std::uint64_t i = 0;
  for (auto _ : state) {
    auto attr = store->mknod(kRootIno, name_of(i++), S_IFREG | 0644, 0, kRootCaller);
    if (!attr) return state.SkipWithError("mknod failed");
    inos.push_back(attr.value().ino);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Create);

void BM_CreateUnlink(benchmark::State& state) {
  auto store = make_store(state);
  if (!store) return;
  for (auto _ : state) {
    auto attr = store->mknod(kRootIno, "f", S_IFREG | 0644, 0, kRootCaller);
    if (!attr || !store->unlink(kRootIno, "f")) return state.SkipWithError("mknod/unlink failed");
    store->forget(attr.value().ino, 1);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CreateUnlink);

// mkdir and rmdir as the FUSE bench's meta-mkdir / meta-rmdir drive them: kBatch
// subdirectories of one directory, made in order and removed in the order they were made,
// each call with a request id (so that its outcome is kept for a resend, as FUSE's are).
// The other half of each batch runs with the timer paused.
constexpr std::uint64_t kBatch = 5000;

bool make_dirs(Store& store, Ino dir, std::uint64_t& unique) {
  for (std::uint64_t i = 0; i < kBatch; ++i) {
    auto attr = store.mkdir(dir, name_of(i), 0755, kRootCaller, shm::Request{++unique});
    if (!attr) return false;
    store.forget(attr.value().ino, 1);
  }
  return true;
}

bool remove_dirs(Store& store, Ino dir, std::uint64_t& unique) {
  for (std::uint64_t i = 0; i < kBatch; ++i)
    if (!store.rmdir(dir, name_of(i), shm::Request{++unique})) return false;
  return true;
}

// Batches of mkdirs and rmdirs in one directory; only the mkdirs or only the rmdirs timed.
enum class Timed { kMkdir, kRmdir };
void dir_batches(benchmark::State& state, Timed timed) {
  auto store = make_store(state);
  if (!store) return;
  auto dir = store->mkdir(kRootIno, "w", 0755, kRootCaller);
  if (!dir) return state.SkipWithError("mkdir failed");
  std::uint64_t unique = 0;
  auto step = [&](bool is_timed, auto&& run) {
    if (!is_timed) state.PauseTiming();
    const bool ok = run(*store, dir.value().ino, unique);
    if (!is_timed) state.ResumeTiming();
    return ok;
  };
  for (auto _ : state) {
    if (!step(timed == Timed::kMkdir, make_dirs)) return state.SkipWithError("mkdir failed");
    if (!step(timed == Timed::kRmdir, remove_dirs)) return state.SkipWithError("rmdir failed");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kBatch));
}

void BM_Mkdir(benchmark::State& state) { dir_batches(state, Timed::kMkdir); }
BENCHMARK(BM_Mkdir)->Unit(benchmark::kMillisecond);
void BM_Rmdir(benchmark::State& state) { dir_batches(state, Timed::kRmdir); }
BENCHMARK(BM_Rmdir)->Unit(benchmark::kMillisecond);

// Writes of state.range(0) bytes cycling over kFileSpan: the first pass allocates pages,
// later passes overwrite them, as a long-running writer does.
void BM_Write(benchmark::State& state) {
  auto store = make_store(state);
  if (!store) return;
  Ino ino = make_file(state, *store, "data");
  if (!ino) return;
  const auto len = static_cast<std::uint64_t>(state.range(0));
  std::vector<std::byte> buf(len, std::byte{0x5a});
  std::uint64_t offset = 0;
  for (auto _ : state) {
    if (!write_at(*store, ino, offset, buf)) return state.SkipWithError("write failed");
    offset = (offset + len) % kFileSpan;
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * len));
}
BENCHMARK(BM_Write)->Arg(4096)->Arg(1 << 20);

// Reads of state.range(0) bytes into a buffer of the caller's, as a FUSE read does.
void BM_Read(benchmark::State& state) {
  auto store = make_store(state);
  if (!store) return;
  Ino ino = make_file(state, *store, "data");
  if (!ino) return;
  std::vector<std::byte> fill(kMiB, std::byte{0x5a});
  for (std::uint64_t off = 0; off < kFileSpan; off += kMiB)
    if (!write_at(*store, ino, off, fill)) return state.SkipWithError("prefill failed");
  const auto len = static_cast<std::uint64_t>(state.range(0));
  std::vector<std::byte> out(len);
  std::uint64_t offset = 0;
  for (auto _ : state) {
    auto got = store->read(ino, offset, out);
    if (!got || got.value() != len) return state.SkipWithError("read failed");
    benchmark::DoNotOptimize(out.data());
    offset = (offset + len) % kFileSpan;
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * len));
}
BENCHMARK(BM_Read)->Arg(4096)->Arg(1 << 20);

// One page allocated (a 4 KiB write into an empty file) and given back (truncate to 0,
// which returns the page to the pool and punches it out of the data region).
void BM_PageAllocFree(benchmark::State& state) {
  auto store = make_store(state);
  if (!store) return;
  Ino ino = make_file(state, *store, "page");
  if (!ino) return;
  std::vector<std::byte> page(shm::kPageSize, std::byte{0x5a});
  shm::AttrChange truncate;
  truncate.size = 0;
  for (auto _ : state) {
    if (!write_at(*store, ino, 0, page) || !store->setattr(ino, truncate, kRootCaller))
      return state.SkipWithError("write/truncate failed");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PageAllocFree);

}  // namespace
}  // namespace hostchanfs::bench

BENCHMARK_MAIN();
