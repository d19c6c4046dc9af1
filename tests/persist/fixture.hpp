// The persistence layer's test region: a schema with every kind of part (a deep B+tree of
// fanout 4, a wide one, a tree whose values own data pages of an extra memfd, a slot table
// with volatile cells, a user superblock), a model of its content, and random operations
// applied to both. Shared by the unit, crash and kill tests and the crash child.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <ostream>
#include <stdexcept>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "shm/persist/btree.hpp"
#include "shm/persist/page_pool.hpp"
#include "shm/persist/region.hpp"
#include "shm/persist/slot_table.hpp"
#include "shm/persist/tx.hpp"
#include "sys/memfd.hpp"

namespace hostchanfs::shm::persist::testing {

struct TestUser {
  std::uint64_t counter;
  std::uint64_t sum;
  std::uint64_t reserved[6];
  bool operator==(const TestUser&) const = default;
};

enum TestTree : std::size_t { kSmall = 0, kWide = 1, kFiles = 2 };
inline constexpr std::size_t kNames = 0;  // the slot table
inline constexpr std::size_t kData = 1;   // the extra-file pool

using U64Tree = BTree<std::uint64_t, std::uint64_t>;
using FileTree = BTree<std::uint64_t, std::uint32_t>;  // key -> data page holding its tag

struct NameSlot {
  std::uint64_t key;
  std::uint32_t len;
  char name[244];
};
static_assert(sizeof(NameSlot) == 256);

struct TestOptions {
  std::uint64_t arena_nodes = 4096;
  std::uint64_t data_pages = 1024;
  std::uint64_t names = 600;
  std::uint64_t log_bytes = 1 << 20;
  std::uint16_t small_cap = 4;
};

inline Schema test_schema(const TestOptions& o = {}) {
  Schema s;
  s.user_version = 7;
  s.user_bytes = sizeof(TestUser);
  s.log_bytes = o.log_bytes;
  s.arena_nodes = o.arena_nodes;
  s.pools = {PoolSpec{"data", 1, o.data_pages, 0}};
  s.tables = {TableSpec{"names", sizeof(NameSlot), o.names, 2}};
  s.trees = {tree_spec<std::uint64_t, std::uint64_t>("small", o.small_cap, o.small_cap),
             tree_spec<std::uint64_t, std::uint64_t>("wide"),
             tree_spec<std::uint64_t, std::uint32_t>("files")};
  // Every data page in use is owned by one entry of the files tree.
  s.check = [](const Region& r, CheckContext& ctx) {
    FileTree files(r, kFiles);
    for (auto c = files.begin(); c.valid() && ctx.ok(); c.next())
      ctx.use_page(kData, c.value(), "the files tree");
  };
  return s;
}

// A region in fresh memfds, and attaching to it again as a restarted process would.
class TestRegion {
 public:
  explicit TestRegion(TestOptions o = {}) : schema_(test_schema(o)) {
    meta_ = make_memfd("persist-test-meta", 0).value();
    data_ = make_memfd("persist-test-data", o.data_pages * kPage).value();
    auto r = Region::create(dup_meta(), {data_.get()}, schema_);
    if (!r) throw std::runtime_error("create: " + r.error().what);
    region_ = std::move(r.value());
  }
  Region& region() { return *region_; }
  Region* operator->() { return region_.get(); }
  const Schema& schema() const { return schema_; }
  int meta_fd() const { return meta_.get(); }
  int data_fd() const { return data_.get(); }
  UniqueFd dup_meta() const { return UniqueFd(::fcntl(meta_.get(), F_DUPFD_CLOEXEC, 0)); }

  // Unmap, then attach (recovery, check) as a new process would.
  Checked<void> reattach() {
    region_.reset();
    auto r = Region::attach(dup_meta(), {data_.get()}, schema_);
    if (!r) return r.error();
    region_ = std::move(r.value());
    return success();
  }
  void close() { region_.reset(); }

 private:
  Schema schema_;
  UniqueFd meta_, data_;
  std::unique_ptr<Region> region_;
};

// One item of a pool or table, taken in a tx of its own.
template <class Allocator>
std::uint32_t alloc_committed(Region& r, const Allocator& a) {
  Tx tx(r);
  auto item = a.alloc(tx);
  if (!item) throw std::runtime_error("alloc_committed: nothing left");
  tx.commit();
  return *item;
}

inline std::uint64_t read_tag(const Region& r, std::uint32_t page) {
  std::uint64_t tag = 0;
  if (::pread(r.file(1), &tag, sizeof tag, static_cast<off_t>(page * kPage)) != sizeof tag) return ~0ull;
  return tag;
}
inline void write_tag(const Region& r, std::uint32_t page, std::uint64_t tag) {
  // The page is fresh in this tx; a rollback punches it.
  if (::pwrite(r.file(1), &tag, sizeof tag, static_cast<off_t>(page * kPage)) != sizeof tag) std::abort();
}

// What a region holds, without the bytes nobody may read (free slots, node tails, the log).
struct Snapshot {
  TestUser user{};
  std::vector<std::pair<std::uint64_t, std::uint64_t>> small, wide, files;  // files: key -> tag
  std::vector<std::pair<std::uint64_t, std::string>> names;                 // key, name (sorted)
  std::uint64_t arena_in_use = 0, data_in_use = 0, names_live = 0;
  bool operator==(const Snapshot&) const = default;
};

template <class Tree>
std::vector<std::pair<std::uint64_t, std::uint64_t>> entries_of(const Tree& t) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  for (auto c = t.begin(); c.valid(); c.next()) out.emplace_back(c.key(), c.value());
  return out;
}

inline Snapshot snapshot(const Region& r) {
  Snapshot s;
  s.user = r.user_as<TestUser>();
  s.small = entries_of(U64Tree(r, kSmall));
  s.wide = entries_of(U64Tree(r, kWide));
  for (auto [k, page] : entries_of(FileTree(r, kFiles))) s.files.emplace_back(k, read_tag(r, static_cast<std::uint32_t>(page)));
  SlotTable names(r, kNames);
  for (std::uint32_t i = 0; i < names.high_water(); ++i)
    if (names.live(i)) s.names.emplace_back(names.at<NameSlot>(i).key, std::string(names.at<NameSlot>(i).name, names.at<NameSlot>(i).len));
  std::sort(s.names.begin(), s.names.end());
  s.arena_in_use = PagePool(r, 0).in_use();
  s.data_in_use = PagePool(r, kData).in_use();
  s.names_live = names.live_count();
  return s;
}

inline void PrintTo(const Snapshot& s, std::ostream* os) {
  *os << "{counter " << s.user.counter << ", sum " << s.user.sum << ", small " << s.small.size() << ", wide "
      << s.wide.size() << ", files " << s.files.size() << ", names " << s.names.size() << ", arena "
      << s.arena_in_use << ", data " << s.data_in_use << "}";
}

// --- random operations, on a region and on a model of it ---------------------------------
struct Op {
  enum Kind : std::uint32_t { kInsertSmall, kEraseSmall, kInsertWide, kEraseWideRange, kCreateFile, kDeleteFile, kCompound, kKinds };
  std::uint32_t kind;
  std::uint32_t max;
  std::uint64_t key, value, hi;
};

struct Model {
  TestUser user{};
  std::map<std::uint64_t, std::uint64_t> small, wide, files;

  Snapshot as_snapshot(const Snapshot& real) const {  // the parts a model knows
    Snapshot s = real;
    s.user = user;
    s.small.assign(small.begin(), small.end());
    s.wide.assign(wide.begin(), wide.end());
    s.files.assign(files.begin(), files.end());
    return s;
  }
  void apply(const Op& op) {
    switch (op.kind) {
      case Op::kInsertSmall:
        if (small.emplace(op.key, op.value).second) ++user.counter;
        break;
      case Op::kEraseSmall:
        small.erase(op.key);
        break;
      case Op::kInsertWide:
        wide.emplace(op.key, op.value);
        break;
      case Op::kEraseWideRange: {
        auto it = wide.lower_bound(op.key);
        for (std::uint32_t n = 0; it != wide.end() && it->first < op.hi && n < op.max; ++n) it = wide.erase(it);
        break;
      }
      case Op::kCreateFile:
        files.emplace(op.key, op.value);
        break;
      case Op::kDeleteFile:
        files.erase(op.key);
        break;
      case Op::kCompound:
        small.emplace(op.key, op.value);
        wide.emplace(op.key, op.value);
        user.sum += op.value;
        break;
    }
  }
};

inline Op random_op(std::mt19937_64& rng, std::uint64_t key_space) {
  Op op{};
  op.kind = static_cast<std::uint32_t>(rng() % Op::kKinds);
  op.key = rng() % key_space;
  op.value = rng();
  op.hi = op.key + 1 + rng() % 64;
  op.max = 1 + static_cast<std::uint32_t>(rng() % 48);
  return op;
}

// The op in one tx, committed. false when a pool ran out (the tx is rolled back).
inline bool apply(Region& r, const Op& op) {
  Tx tx(r);
  U64Tree small(r, kSmall), wide(r, kWide);
  FileTree files(r, kFiles);
  auto& user = r.user_as<TestUser>();
  switch (op.kind) {
    case Op::kInsertSmall: {
      auto in = small.insert(tx, op.key, op.value);
      if (!in) return false;
      if (in.value()) tx.set(user.counter, user.counter + 1);
      break;
    }
    case Op::kEraseSmall:
      small.erase(tx, op.key);
      break;
    case Op::kInsertWide:
      if (!wide.insert(tx, op.key, op.value)) return false;
      break;
    case Op::kEraseWideRange:
      wide.erase_range(tx, op.key, op.hi, op.max, [](std::uint64_t, std::uint64_t) {});
      break;
    case Op::kCreateFile: {
      if (files.contains(op.key)) break;
      PagePool data(r, kData);
      auto page = data.alloc(tx);
      if (!page) return false;
      write_tag(r, *page, op.value);
      if (!files.insert(tx, op.key, *page)) return false;
      break;
    }
    case Op::kDeleteFile: {
      PagePool data(r, kData);
      if (auto page = files.erase(tx, op.key)) data.free(tx, *page);
      break;
    }
    case Op::kCompound:
      if (!small.insert(tx, op.key, op.value) || !wide.insert(tx, op.key, op.value)) return false;
      tx.set(user.sum, user.sum + op.value);
      break;
  }
  tx.commit();
  return true;
}

// The op the crash child runs (and crash_test's insert sweep): one key into the deep tree
// and the counter, in one tx.
inline void insert_small_and_count(Region& r, std::uint64_t key) {
  Tx tx(r);
  U64Tree small(r, kSmall);
  auto& user = r.user_as<TestUser>();
  auto inserted = small.insert(tx, key, key * 3);
  if (!inserted || !inserted.value()) throw std::runtime_error("insert_small_and_count: no room, or the key is there");
  tx.set(user.counter, user.counter + 1);
  tx.commit();
}

}  // namespace hostchanfs::shm::persist::testing
