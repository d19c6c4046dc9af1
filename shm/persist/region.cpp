#include "shm/persist/region.hpp"

#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "shm/persist/page_pool.hpp"
#include "shm/persist/slot_table.hpp"
#include "shm/persist/tx.hpp"
#include "sys/errno_text.hpp"
#include "sys/memfd.hpp"

namespace hostchanfs::shm::persist {

void fatal(const std::string& what) noexcept {
  std::fprintf(stderr, "hostchanfs: persist: %s\n", what.c_str());
  std::abort();
}

namespace {

constexpr std::size_t kLoggedSlots = 4096;  // ranges a tx remembers as logged (power of 2)

Fault protocol(std::string what) { return Fault{std::errc::protocol_error, std::move(what)}; }
Fault unclean(std::string what) { return Fault{static_cast<std::errc>(EUCLEAN), std::move(what)}; }

std::string name_of(const char (&n)[kNameLen]) { return std::string(n, strnlen(n, kNameLen)); }

bool set_name(char (&dst)[kNameLen], const std::string& name) {
  if (name.empty() || name.size() >= kNameLen) return false;
  std::memset(dst, 0, kNameLen);
  std::memcpy(dst, name.data(), name.size());
  return true;
}

// The geometry of a region for `schema`: a header with every offset and size filled in
// and every state field at its empty value. The one place the layout is decided.
Checked<RegionHeader> plan(const Schema& schema, std::size_t files) {
  RegionHeader h{};
  h.version = kFormatVersion;
  h.header_size = sizeof(RegionHeader);
  h.user_version = schema.user_version;
  if (schema.pools.size() + 1 > kMaxPools || schema.tables.size() > kMaxTables ||
      schema.trees.size() > kMaxTrees)
    return protocol("schema has too many pools, tables or trees");
  if (schema.log_bytes < 4 * kPage) return protocol("schema's log is smaller than 16 KiB");
  if (schema.arena_nodes >= kNoNode) return protocol("schema's arena has too many nodes");
  std::uint64_t off = kPage;
  h.log_offset = off;
  h.log_bytes = round_to_page(schema.log_bytes);
  off += h.log_bytes;
  h.user_offset = off;
  h.user_bytes = schema.user_bytes;
  off += round_to_page(schema.user_bytes);

  auto add_pool = [&](std::size_t i, const std::string& name, std::uint32_t file,
                      std::uint64_t capacity, std::uint64_t base) -> Checked<void> {
    PoolDesc& p = h.pool[i];
    if (!set_name(p.name, name)) return protocol("pool name '" + name + "' is empty or too long");
    if (capacity >= kNoNode) return protocol("pool " + name + " is too large");
    if (i > 0 && (file == 0 || file > files))
      return protocol("pool " + name + " lives in file " + std::to_string(file) + ", but " +
                      std::to_string(files) + " extra files were given");
    if (base % kPage) return protocol("pool " + name + " does not start on a page");
    p.file = file;
    p.capacity = static_cast<std::uint32_t>(capacity);
    p.base = base;
    for (auto& spare : p.spares) spare = kNoNode;
    p.stack_offset = off;
    off += round_to_page(capacity * 4);
    return success();
  };
  h.pools = static_cast<std::uint32_t>(schema.pools.size() + 1);
  HC_TRYV(add_pool(0, "arena", 0, schema.arena_nodes, 0));
  for (std::size_t i = 0; i < schema.pools.size(); ++i) {
    const PoolSpec& p = schema.pools[i];
    HC_TRYV(add_pool(i + 1, p.name, p.file, p.capacity, p.base));
  }

  h.tables = static_cast<std::uint32_t>(schema.tables.size());
  for (std::size_t i = 0; i < schema.tables.size(); ++i) {
    const TableSpec& s = schema.tables[i];
    TableDesc& t = h.table[i];
    if (!set_name(t.name, s.name)) return protocol("table name '" + s.name + "' is empty or too long");
    if (s.slot_size == 0 || s.slot_size % 8 || s.slot_size > kPage)
      return protocol("table " + s.name + ": slot size " + std::to_string(s.slot_size) +
                      " is not a multiple of 8 up to 4096");
    if (s.capacity >= kNoNode) return protocol("table " + s.name + " is too large");
    t.slot_size = s.slot_size;
    t.capacity = static_cast<std::uint32_t>(s.capacity);
    t.slots_per_page = static_cast<std::uint32_t>(kPage / s.slot_size);
    t.cells = s.cells;
    t.spare_page = kNoNode;
    t.pages = (s.capacity + t.slots_per_page - 1) / t.slots_per_page;
    if (t.slots_per_page > 0xffff) return protocol("table " + s.name + ": slots too small");
    t.gen_live_offset = off;
    off += round_to_8(8 * s.capacity);
    t.stack_offset = off;
    off += round_to_8(4 * s.capacity);
    t.page_live_offset = off;
    off += round_to_8(2 * t.pages);
    t.cells_offset = off;
    off += 8 * s.capacity * s.cells;
    off = round_to_page(off);
    t.slots_offset = off;
    off += t.pages * kPage;
  }

  h.arena_offset = off;
  h.pool[0].base = off;
  off += schema.arena_nodes * kPage;

  h.trees = static_cast<std::uint32_t>(schema.trees.size());
  for (std::size_t i = 0; i < schema.trees.size(); ++i) {
    const TreeSpec& s = schema.trees[i];
    TreeDesc& t = h.tree[i];
    if (!set_name(t.name, s.name)) return protocol("tree name '" + s.name + "' is empty or too long");
    if (!s.check || s.key_size == 0 || s.leaf_cap < 4 || s.inner_cap < 4)
      return protocol("tree " + s.name + " was not made by tree_spec<K, V>()");
    t.key_size = s.key_size;
    t.value_size = s.value_size;
    t.leaf_cap = s.leaf_cap;
    t.inner_cap = s.inner_cap;
    t.root = kNoNode;
  }
  h.files = static_cast<std::uint32_t>(files);
  h.region_size = off;
  return h;
}

// Slot pages that hold a slot below the high-water mark: the others were never touched.
std::uint64_t used_slot_pages(const TableDesc& t) {
  return (std::uint64_t{t.high_water} + t.slots_per_page - 1) / t.slots_per_page;
}

// The schema as the region records it: capacities and sizes from `h`.
Schema as_recorded(const Schema& schema, const RegionHeader& h) {
  Schema s = schema;
  s.log_bytes = h.log_bytes;
  s.user_bytes = h.user_bytes;
  s.arena_nodes = h.pool[0].capacity;
  for (std::size_t i = 0; i < s.pools.size() && i + 1 < kMaxPools; ++i) {
    s.pools[i].capacity = h.pool[i + 1].capacity;
    s.pools[i].base = h.pool[i + 1].base;
  }
  for (std::size_t i = 0; i < s.tables.size() && i < kMaxTables; ++i) s.tables[i].capacity = h.table[i].capacity;
  return s;
}

}  // namespace

// --- CheckContext -----------------------------------------------------------------------

CheckContext::CheckContext(const Region& region) : region_(region) {
  const RegionHeader& h = region.header();
  for (std::uint32_t i = 0; i < h.pools && i < kMaxPools; ++i) {
    std::uint64_t n = std::min(h.pool[i].high_water, h.pool[i].capacity);
    used_.emplace_back(n, false);
    free_.emplace_back(n, false);
  }
}

void CheckContext::fail(std::string what) {
  if (problem_.empty()) problem_ = std::move(what);
}

// The messages are made only on a problem: check() runs over every page at attach.
void CheckContext::use_page(std::size_t pool, std::uint64_t page, std::string_view owner) {
  if (!ok()) return;
  if (pool >= used_.size()) return fail("no pool " + std::to_string(pool) + " (used by " + std::string(owner) + ")");
  auto where = [&] { return "page " + std::to_string(page) + " of pool " + name_of(region_.header().pool[pool].name); };
  if (page >= used_[pool].size())
    return fail(where() + ", used by " + std::string(owner) + ", is at or beyond the high-water mark");
  if (free_[pool][page]) return fail(where() + ", used by " + std::string(owner) + ", is also on the free stack");
  if (used_[pool][page]) return fail(where() + " is used twice (again by " + std::string(owner) + ")");
  used_[pool][page] = true;
}

void CheckContext::free_page(std::size_t pool, std::uint64_t page) {
  auto where = [&] { return "page " + std::to_string(page) + " of pool " + name_of(region_.header().pool[pool].name); };
  if (page >= free_[pool].size()) return fail(where() + " is on the free stack but at or beyond the high-water mark");
  if (free_[pool][page]) return fail(where() + " is on the free stack twice");
  free_[pool][page] = true;
}

// --- Region -----------------------------------------------------------------------------

Region::Region(UniqueFd fd, std::vector<int> files, Mapping map, Schema schema)
    : fd_(std::move(fd)), files_(std::move(files)), map_(std::move(map)), schema_(std::move(schema)),
      tx_(std::make_unique<TxState>()) {
  tx_->logged.resize(kLoggedSlots, TxState::Logged{0, 0, 0});
  tx_->fresh.reserve(64);
  tx_->deferred.reserve(64);
  tx_->commit_punches.reserve(64);
}

Region::~Region() = default;

std::uint64_t Region::size_for(const Schema& schema) {
  std::size_t files = 0;
  for (const auto& p : schema.pools) files = std::max<std::size_t>(files, p.file);
  auto h = plan(schema, files);
  return h ? h.value().region_size : 0;
}

Region::Stats Region::stats() const { return tx_->stats; }

Checked<std::unique_ptr<Region>> Region::map(UniqueFd fd, std::vector<int> files, std::uint64_t size,
                                             const Schema& schema) {
  auto m = Mapping::map_shared(fd.get(), size);
  if (!m) return Fault{m.error(), "mapping the region: " + errno_text(m.error())};
  return std::unique_ptr<Region>(new Region(std::move(fd), std::move(files), std::move(m.value()), schema));
}

void Region::note_volatile_areas() {
  const RegionHeader& h = header();
  volatile_.clear();
  for (std::uint32_t i = 0; i < h.tables; ++i) {
    const TableDesc& t = h.table[i];
    if (t.cells) volatile_.push_back({t.cells_offset, t.cells_offset + 8ull * t.capacity * t.cells});
  }
}

Checked<std::unique_ptr<Region>> Region::create(UniqueFd fd, std::vector<int> files, const Schema& schema) {
  HC_TRY(h, plan(schema, files.size()));
  for (std::uint32_t i = 1; i < h.pools; ++i) {
    const PoolDesc& p = h.pool[i];
    auto size = fd_size(files[p.file - 1]);
    if (!size || size.value() < p.base + std::uint64_t{p.capacity} * kPage)
      return protocol("file " + std::to_string(p.file) + " is too small for pool " + name_of(p.name));
  }
  if (::ftruncate(fd.get(), 0) < 0 || ::ftruncate(fd.get(), static_cast<off_t>(h.region_size)) < 0)
    return Fault{last_errc(), "sizing the region to " + std::to_string(h.region_size) + " bytes: " + errno_text(errno)};
  if (::getrandom(h.hash_seed, sizeof h.hash_seed, 0) != sizeof h.hash_seed)
    return Fault{last_errc(), "getrandom for the hash seed: " + errno_text(errno)};
  HC_TRY(r, map(std::move(fd), std::move(files), h.region_size, schema));
  // Everything but the magic, then the magic: a half-formatted region is never taken for
  // a region (the areas themselves are zeros: a fresh, empty memfd).
  RegionHeader& live = r->header();
  std::memcpy(static_cast<void*>(&live), &h, sizeof h);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  std::memcpy(live.magic, kRegionMagic, sizeof live.magic);
  r->note_volatile_areas();
  return r;
}

Checked<std::unique_ptr<Region>> Region::attach(UniqueFd fd, std::vector<int> files, const Schema& schema) {
  auto size = fd_size(fd.get());
  if (!size) return Fault{size.error(), "the region's size: " + errno_text(size.error())};
  if (size.value() < kPage) return protocol("not a region: smaller than its header");
  HC_TRY(r, map(std::move(fd), std::move(files), size.value(), schema));
  const RegionHeader& h = r->header();
  if (std::memcmp(h.magic, kRegionMagic, sizeof h.magic) != 0)
    return protocol("not a region: no magic (never formatted, or formatting did not finish)");
  if (h.version != kFormatVersion || h.header_size != sizeof(RegionHeader))
    return protocol("region format version " + std::to_string(h.version) + ", this program reads " +
                    std::to_string(kFormatVersion));
  if (h.user_version != schema.user_version)
    return protocol("region holds layout version " + std::to_string(h.user_version) + ", this program reads " +
                    std::to_string(schema.user_version));
  if (h.region_size != size.value())
    return protocol("region is " + std::to_string(size.value()) + " bytes, its header says " +
                    std::to_string(h.region_size));
  HC_TRYV(r->verify_geometry(schema));
  r->note_volatile_areas();
  HC_TRYV(r->recover());
  HC_TRYV(r->check(CheckLevel::kFull));
  return r;
}

Checked<void> Region::verify_geometry(const Schema& schema) const {
  const RegionHeader& h = header();
  if (h.pools != schema.pools.size() + 1 || h.tables != schema.tables.size() || h.trees != schema.trees.size())
    return protocol("region has " + std::to_string(h.pools) + " pools, " + std::to_string(h.tables) + " tables, " +
                    std::to_string(h.trees) + " trees; the schema " + std::to_string(schema.pools.size() + 1) +
                    ", " + std::to_string(schema.tables.size()) + ", " + std::to_string(schema.trees.size()));
  if (h.files != files_.size())
    return protocol("region uses " + std::to_string(h.files) + " extra files, " + std::to_string(files_.size()) +
                    " were given");
  HC_TRY(want, plan(as_recorded(schema, h), files_.size()));
  auto differs = [](const auto& a, const auto& b) { return std::memcmp(&a, &b, sizeof a) != 0; };
  for (std::uint32_t i = 0; i < h.pools; ++i) {
    PoolDesc a = want.pool[i], b = h.pool[i];
    a.top = b.top = 0;
    a.high_water = b.high_water = 0;
    std::memset(a.spares, 0, sizeof a.spares);
    std::memset(b.spares, 0, sizeof b.spares);
    if (i == 0) a.base = b.base = 0;  // the arena's: checked with the geometry below
    if (differs(a, b)) return protocol("pool " + name_of(h.pool[i].name) + " does not match the schema's " +
                                       name_of(want.pool[i].name));
    if (i > 0) {
      auto fsize = fd_size(file(b.file));
      if (!fsize || fsize.value() < b.base + std::uint64_t{b.capacity} * kPage)
        return protocol("file " + std::to_string(b.file) + " is too small for pool " + name_of(b.name));
    }
  }
  for (std::uint32_t i = 0; i < h.tables; ++i) {
    TableDesc a = want.table[i], b = h.table[i];
    a.top = b.top = a.high_water = b.high_water = 0;
    a.live = b.live = 0;
    a.spare_page = b.spare_page = 0;
    if (differs(a, b)) return protocol("table " + name_of(h.table[i].name) + " does not match the schema's " +
                                       name_of(want.table[i].name));
  }
  for (std::uint32_t i = 0; i < h.trees; ++i) {
    TreeDesc a = want.tree[i], b = h.tree[i];
    a.root = b.root = a.height = b.height = 0;
    a.count = b.count = a.nodes = b.nodes = 0;
    if (differs(a, b)) return protocol("tree " + name_of(h.tree[i].name) + " does not match the schema's " +
                                       name_of(want.tree[i].name));
  }
  if (want.log_offset != h.log_offset || want.log_bytes != h.log_bytes || want.user_offset != h.user_offset ||
      want.arena_offset != h.arena_offset || want.region_size != h.region_size)
    return protocol("region geometry (log, user area, arena) does not add up");
  return success();
}

Checked<void> Region::recover() {
  const auto* log = reinterpret_cast<const LogHeader*>(at(header().log_offset));
  bool committed = log->state & kCommitted;
  HC_TRY(records, settle_log(*this));
  tx_->stats.recovered_records = records;
  tx_->stats.recovered_commit = records && committed;
  return success();
}

void Region::check_pools(CheckContext& ctx) const {
  const RegionHeader& h = header();
  for (std::uint32_t i = 0; i < h.pools && ctx.ok(); ++i) {
    const PoolDesc& p = h.pool[i];
    if (!(p.top <= p.high_water && p.high_water <= p.capacity))
      return ctx.fail("pool " + name_of(p.name) + ": top " + std::to_string(p.top) + ", high-water mark " +
                      std::to_string(p.high_water) + ", capacity " + std::to_string(p.capacity) +
                      " are out of order");
    PagePool pool(*this, i);
    for (std::uint32_t k = 0; k < p.top && ctx.ok(); ++k) ctx.free_page(i, pool.stack_entry(k));
  }
}

void Region::check_tables(CheckContext& ctx) const {
  const RegionHeader& h = header();
  for (std::uint32_t i = 0; i < h.tables && ctx.ok(); ++i) {
    const TableDesc& t = h.table[i];
    std::string name = "table " + name_of(t.name);
    if (!(t.top <= t.high_water && t.high_water <= t.capacity))
      return ctx.fail(name + ": top, high-water mark and capacity are out of order");
    SlotTable table(*this, i);
    std::vector<bool> on_stack(t.high_water, false);
    for (std::uint32_t k = 0; k < t.top; ++k) {
      std::uint32_t s = table.stack_[k];
      if (s >= t.high_water) return ctx.fail(name + ": slot " + std::to_string(s) + " on the free stack is beyond the high-water mark");
      if (on_stack[s]) return ctx.fail(name + ": slot " + std::to_string(s) + " is on the free stack twice");
      if (table.live(s)) return ctx.fail(name + ": slot " + std::to_string(s) + " is live and on the free stack");
      on_stack[s] = true;
    }
    // Only what lies below the high-water mark is read: the rest was never touched, and
    // reading it would fault memory in for nothing.
    std::uint64_t live = 0;
    const std::uint64_t used_pages = used_slot_pages(t);
    std::vector<std::uint32_t> per_page(used_pages, 0);
    for (std::uint32_t s = 0; s < t.high_water; ++s) {
      bool is_live = table.gen_live_[s] & 1;
      if (!is_live && !on_stack[s])
        return ctx.fail(name + ": slot " + std::to_string(s) + " is neither live nor free (leaked)");
      if (is_live) {
        ++live;
        ++per_page[s / t.slots_per_page];
      }
    }
    if (live != t.live)
      return ctx.fail(name + ": " + std::to_string(live) + " live slots, its count says " + std::to_string(t.live));
    for (std::uint64_t p = 0; p < used_pages; ++p)
      if (per_page[p] != table.page_live_[p])
        return ctx.fail(name + ": slot page " + std::to_string(p) + " has " + std::to_string(per_page[p]) +
                        " live slots, its count says " + std::to_string(table.page_live_[p]));
  }
}

namespace {
// Does [offset, offset + len) of fd hold any data (a page that is not a hole)?
bool holds_data(int fd, std::uint64_t offset, std::uint64_t len) {
  off_t next = ::lseek(fd, static_cast<off_t>(offset), SEEK_DATA);
  if (next < 0) return false;  // ENXIO: no data from here to the end
  return static_cast<std::uint64_t>(next) < offset + len;
}
}  // namespace

void Region::check_holes(CheckContext& ctx) const {
  const RegionHeader& h = header();
  for (std::uint32_t i = 0; i < h.pools && ctx.ok(); ++i) {
    const PoolDesc& p = h.pool[i];
    PagePool pool(*this, i);
    int fd = file(p.file);
    std::string name = "pool " + name_of(p.name);
    if (holds_data(fd, pool.file_offset(p.high_water), std::uint64_t{p.capacity - p.high_water} * kPage))
      return ctx.fail(name + ": a page beyond the high-water mark holds data");
    for (std::uint32_t spare : p.spares)
      if (spare != kNoNode && (p.file != 0 || spare >= p.high_water))
        return ctx.fail(name + ": spare page " + std::to_string(spare) + " cannot be one");
    for (std::uint32_t k = 0; k < p.top; ++k) {
      std::uint32_t page = pool.stack_entry(k);
      if (!pool.is_spare(page) && holds_data(fd, pool.file_offset(page), kPage))
        return ctx.fail(name + ": free page " + std::to_string(page) + " holds data (not punched)");
    }
  }
  for (std::uint32_t i = 0; i < h.tables && ctx.ok(); ++i) {
    const TableDesc& t = h.table[i];
    SlotTable table(*this, i);
    const std::uint64_t used_pages = used_slot_pages(t);
    for (std::uint64_t p = 0; p < used_pages; ++p)
      if (table.page_live_[p] == 0 && p != t.spare_page && table.group_empty(p) &&
          holds_data(fd(), t.slots_offset + p * kPage, kPage))
        return ctx.fail("table " + name_of(t.name) + ": slot page " + std::to_string(p) +
                        " has no live slot in its group but holds data (not punched)");
    if (holds_data(fd(), t.slots_offset + used_pages * kPage, (t.pages - used_pages) * kPage))
      return ctx.fail("table " + name_of(t.name) + ": a slot page beyond the high-water mark holds data");
  }
}

Checked<void> Region::check(CheckLevel level) const {
  const RegionHeader& h = header();
  const auto* log = reinterpret_cast<const LogHeader*>(at(h.log_offset));
  if (log->state != 0) return unclean("the undo log is not settled (a tx is open)");
  CheckContext ctx(*this);
  check_pools(ctx);
  check_tables(ctx);
  for (std::uint32_t i = 0; i < h.trees && ctx.ok(); ++i) schema_.trees[i].check(*this, i, ctx);
  if (ctx.ok() && schema_.check) schema_.check(*this, ctx);
  for (std::uint32_t i = 0; i < h.pools && ctx.ok(); ++i)
    for (std::uint64_t page = 0; page < ctx.used_[i].size(); ++page)
      if (!ctx.used_[i][page] && !ctx.free_[i][page]) {
        ctx.fail("page " + std::to_string(page) + " of pool " + name_of(h.pool[i].name) +
                 " is neither free nor in use (leaked)");
        break;
      }
  if (ctx.ok() && level == CheckLevel::kDeep) check_holes(ctx);
  if (!ctx.ok()) return unclean(ctx.problem());
  return success();
}

}  // namespace hostchanfs::shm::persist
