#include "shm/persist/tx.hpp"

#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>

#include "shm/persist/crash_point.hpp"
#include "shm/persist/page_pool.hpp"
#include "shm/persist/slot_table.hpp"
#include "sys/errno_text.hpp"

namespace hostchanfs::shm::persist {

namespace {

// Orders the stores around it for the compiler. A process that dies has executed its
// stores in program order as far as it got (the memfd keeps them); nothing more is needed.
inline void barrier() noexcept { std::atomic_signal_fence(std::memory_order_seq_cst); }

LogHeader& log_header(const Region& r) {
  return *reinterpret_cast<LogHeader*>(r.at(r.header().log_offset));
}
LogRecord* record_at(const Region& r, std::uint64_t pos) {
  return reinterpret_cast<LogRecord*>(r.at(r.header().log_offset + pos));
}
void store_state(LogHeader& log, std::uint64_t state) {
  barrier();
  std::atomic_ref<std::uint64_t>(log.state).store(state, std::memory_order_relaxed);
  barrier();
}

bool punch(int fd, std::uint64_t offset, std::uint64_t len) {
  for (;;) {
    if (::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                    static_cast<off_t>(len)) == 0)
      return true;
    if (errno != EINTR) return false;
  }
}
void punch_or_die(const Region& r, std::uint32_t file, std::uint64_t offset, std::uint64_t len) {
  if (!punch(r.file(file), offset, len))
    fatal("punching bytes " + std::to_string(offset) + "+" + std::to_string(len) + " of file " +
          std::to_string(file) + ": " + errno_text(errno));
}

// Does [offset, offset + len) of `file` lie inside areas a tx may change there: the pools
// of that file or (file 0) the tables' slot pages? A punch must be whole pages. Runs of
// pages are merged into one record, so a range may cross from one area into the next.
bool in_bounds(const Region& r, std::uint32_t file, std::uint64_t offset, std::uint64_t len, bool whole_pages) {
  const RegionHeader& h = r.header();
  if (len == 0 || offset + len < offset) return false;
  if (whole_pages && (offset % kPage || len % kPage)) return false;
  struct Extent {
    std::uint64_t begin, end;
  };
  Extent extents[kMaxPools + kMaxTables];
  std::size_t n = 0;
  for (std::uint32_t i = 0; i < h.pools && i < kMaxPools; ++i)
    if (h.pool[i].file == file) extents[n++] = {h.pool[i].base, h.pool[i].base + h.pool[i].capacity * kPage};
  for (std::uint32_t i = 0; file == 0 && i < h.tables && i < kMaxTables; ++i)
    extents[n++] = {h.table[i].slots_offset, h.table[i].slots_offset + h.table[i].pages * kPage};
  for (std::uint64_t at = offset; at < offset + len;) {
    std::size_t k = 0;
    while (k < n && !(extents[k].begin <= at && at < extents[k].end)) ++k;
    if (k == n) return false;
    at = extents[k].end;
  }
  return true;
}

bool pwrite_all(int fd, const void* src, std::size_t n, std::uint64_t offset) {
  const auto* p = static_cast<const std::byte*>(src);
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
    offset += static_cast<std::uint64_t>(w);
  }
  return true;
}

bool pread_all(int fd, void* dst, std::size_t n, std::uint64_t offset) {
  auto* p = static_cast<std::byte*>(dst);
  while (n > 0) {
    ssize_t got = ::pread(fd, p, n, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return false;
    if (got == 0) {  // beyond the end of the file: reads as zeros
      std::memset(p, 0, n);
      return true;
    }
    p += got;
    n -= static_cast<std::size_t>(got);
    offset += static_cast<std::uint64_t>(got);
  }
  return true;
}

}  // namespace

Checked<std::uint64_t> settle_log(Region& region) {
  const RegionHeader& h = region.header();
  LogHeader& log = log_header(region);
  std::uint64_t state = log.state;
  if (state == 0) return std::uint64_t{0};
  bool committed = state & kCommitted;
  std::uint64_t count = state & ~kCommitted;

  // Find and check every record before changing anything.
  std::vector<std::uint64_t> positions;
  positions.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(count, h.log_bytes / sizeof(LogRecord))));
  std::uint64_t pos = kLogHeaderSize;
  auto bad = [&](std::uint64_t i, const std::string& why) -> Fault {
    return Fault{static_cast<std::errc>(EUCLEAN), "undo log record " + std::to_string(i + 1) + " of " +
                                                      std::to_string(count) + ": " + why};
  };
  for (std::uint64_t i = 0; i < count; ++i) {
    if (pos + sizeof(LogRecord) > h.log_bytes) return bad(i, "runs past the end of the log");
    const LogRecord& rec = *record_at(region, pos);
    std::uint64_t size = sizeof(LogRecord);
    switch (rec.kind) {
      case RecordKind::kBytes:
        size += round_to_8(rec.len);
        if (rec.target + rec.len > h.region_size || rec.target + rec.len < rec.target)
          return bad(i, "restores bytes beyond the region");
        if (rec.target < h.log_offset + h.log_bytes && rec.target + rec.len > h.log_offset)
          return bad(i, "restores bytes inside the log itself");
        break;
      case RecordKind::kUndoPunch:
      case RecordKind::kCommitPunch:
        if (rec.file > h.files || !in_bounds(region, rec.file, rec.target, rec.len, true))
          return bad(i, "punches outside every pool");
        break;
      case RecordKind::kFileBytes:
        size += round_to_8(rec.len);
        if (rec.file == 0 || rec.file > h.files || !in_bounds(region, rec.file, rec.target, rec.len, false))
          return bad(i, "restores file bytes outside every pool");
        break;
      default:
        return bad(i, "has an unknown kind " + std::to_string(static_cast<unsigned>(rec.kind)));
    }
    if (pos + size > h.log_bytes) return bad(i, "runs past the end of the log");
    positions.push_back(pos);
    pos += size;
  }

  if (committed) {
    for (std::uint64_t p : positions) {
      const LogRecord& rec = *record_at(region, p);
      if (rec.kind != RecordKind::kCommitPunch) continue;
      crash_point::before();
      if (!punch(region.file(rec.file), rec.target, rec.len))
        return Fault{last_errc(), "finishing a committed tx: punching file " + std::to_string(rec.file) +
                                      ": " + errno_text(errno)};
      crash_point::after();
    }
  } else {
    for (auto p = positions.rbegin(); p != positions.rend(); ++p) {
      const LogRecord& rec = *record_at(region, *p);
      if (rec.kind == RecordKind::kCommitPunch) continue;
      crash_point::before();
      if (rec.kind == RecordKind::kBytes) {
        std::memcpy(region.at(rec.target), reinterpret_cast<const std::byte*>(&rec + 1), rec.len);
      } else if (rec.kind == RecordKind::kFileBytes) {
        if (!pwrite_all(region.file(rec.file), &rec + 1, rec.len, rec.target))
          return Fault{last_errc(), "rolling back a tx: writing back bytes of file " + std::to_string(rec.file) +
                                        ": " + errno_text(errno)};
      } else if (!punch(region.file(rec.file), rec.target, rec.len)) {
        return Fault{last_errc(), "rolling back a tx: punching file " + std::to_string(rec.file) +
                                      ": " + errno_text(errno)};
      }
      crash_point::after();
    }
  }
  crash_point::before();
  store_state(log, 0);
  crash_point::after();
  return count;
}

// --- Tx ----------------------------------------------------------------------------------

Tx::Tx(Region& region) : region_(region), st_(*region.tx_) {
  if (st_.owner.load(std::memory_order_relaxed) == std::this_thread::get_id())
    fatal("a second tx on one thread (nested transactions are not supported)");
  lock_ = std::unique_lock(st_.mutex);
  st_.owner.store(std::this_thread::get_id(), std::memory_order_relaxed);
  if (log_header(region_).state != 0) fatal("a tx begins over an unsettled undo log");
}

Tx::~Tx() {
  if (!done_) abort();
}

std::uint64_t Tx::offset_checked(const void* p, std::size_t n, const char* op) const {
  auto* b = static_cast<const std::byte*>(p);
  if (b < region_.base() || b + n > region_.base() + region_.size())
    fatal(std::string("tx.") + op + " of " + std::to_string(n) + " bytes outside the region");
  return region_.offset_of(p);
}

bool Tx::is_fresh(std::uint64_t offset, std::uint64_t len) const noexcept {
  const auto& f = st_.fresh;
  if (f.empty()) return false;
  auto it = std::upper_bound(f.begin(), f.end(), offset,
                             [](std::uint64_t o, const Region::Range& r) { return o < r.begin; });
  if (it == f.begin()) return false;
  --it;
  return offset + len <= it->end;
}

void Tx::note_fresh(std::uint64_t offset, std::uint64_t len) {
  auto& f = st_.fresh;
  auto it = std::upper_bound(f.begin(), f.end(), offset,
                             [](std::uint64_t o, const Region::Range& r) { return o < r.begin; });
  f.insert(it, Region::Range{offset, offset + len});
}

void Tx::publish_count() { store_state(log_header(region_), st_.count); }

bool Tx::append(RecordKind kind, std::uint32_t file, std::uint64_t target, std::uint32_t len,
                const void* payload) {
  const bool has_payload = kind == RecordKind::kBytes || kind == RecordKind::kFileBytes;
  std::uint64_t size = sizeof(LogRecord) + (has_payload ? round_to_8(len) : 0);
  const std::uint64_t log_bytes = region_.header().log_bytes;
  if (st_.tail + size + st_.commit_reserve > log_bytes)
    fatal("tx log overflow: " + std::to_string(st_.count) + " records, " + std::to_string(st_.tail) +
          " of " + std::to_string(log_bytes) + " bytes used, " + std::to_string(size) +
          " more asked (a bug: the operation must be chunked into several txs)");
  LogRecord* rec = record_at(region_, st_.tail);
  rec->target = target;
  rec->len = len;
  rec->kind = kind;
  rec->file = static_cast<std::uint16_t>(file);
  if (kind == RecordKind::kBytes) std::memcpy(rec + 1, payload, len);
  // kFileBytes: the old bytes come from the file itself. A failed read leaves the record
  // uncounted, so nothing refers to it.
  if (kind == RecordKind::kFileBytes && !pread_all(region_.file(file), rec + 1, len, target)) return false;
  st_.last_undo_punch = kind == RecordKind::kUndoPunch ? st_.tail : 0;
  st_.tail += size;
  ++st_.count;
  publish_count();  // the record counts only now that it is complete
  return true;
}

void Tx::prepare(std::uint64_t offset, std::size_t n) {
  if (n == 0) return;
  for (const auto& v : region_.volatile_)
    if (offset < v.end && offset + n > v.begin)
      fatal("tx write to volatile cells at offset " + std::to_string(offset) +
            " (cells change outside txs and must never be logged)");
  const RegionHeader& h = region_.header();
  if (offset < h.log_offset + h.log_bytes && offset + n > h.log_offset)
    fatal("tx write into the undo log area");
  if (is_fresh(offset, n)) return;

  // Logged already in this tx (same start, at least as long)? Then the log holds the
  // bytes as they were when the tx began, which is all a rollback needs. A range logged
  // again longer keeps the longer length: its first bytes' older record still comes later
  // in a backwards replay.
  if (n > 0xffffffffu) fatal("tx write of more than 4 GiB");
  const auto len = static_cast<std::uint32_t>(n);
  for (std::uint32_t j = 0; j < st_.recent_count; ++j) {
    if (st_.recent_offset[j] != offset) continue;
    if (st_.recent_len[j] >= len) return;
    append(RecordKind::kBytes, 0, offset, len, region_.at(offset));
    st_.recent_len[j] = len;
    return;
  }
  if (st_.recent_count < Region::TxState::kRecent) {
    append(RecordKind::kBytes, 0, offset, len, region_.at(offset));
    st_.recent_offset[st_.recent_count] = offset;
    st_.recent_len[st_.recent_count] = len;
    ++st_.recent_count;
    return;
  }
  // Past the first kRecent ranges: the table. Its slots keep one page's words side by
  // side (a page hashed to a start, then its word index), so that a tx's probes touch a
  // few cache lines of it instead of one each.
  auto& table = st_.logged;
  const std::size_t mask = table.size() - 1;
  const std::uint64_t page_start = (offset / kPage) * 0x9e3779b97f4a7c15ull >> 40;
  std::size_t i = static_cast<std::size_t>(page_start + (offset % kPage) / 8) & mask;
  for (;; i = (i + 1) & mask) {
    auto& e = table[i];
    if (e.tx != st_.tx_number) break;
    if (e.offset == offset) {
      if (e.len >= n) return;
      break;
    }
  }
  append(RecordKind::kBytes, 0, offset, len, region_.at(offset));
  auto& e = table[i];
  if (e.tx == st_.tx_number && e.offset == offset) {
    e.len = len;
  } else if (st_.logged_count * 2 < table.size()) {  // keep probes short: stop remembering
    e = {offset, len, st_.tx_number};
    ++st_.logged_count;
  }
}

void Tx::write(void* dst, const void* src, std::size_t n) {
  prepare(offset_checked(dst, n, "write"), n);
  crash_point::before();
  std::memmove(dst, src, n);
  crash_point::after();
}

namespace {
template <class T>
void store_relaxed(T& field, T value) {
  if (reinterpret_cast<std::uintptr_t>(&field) % sizeof(T)) fatal("tx.set_relaxed of a misaligned word");
  std::atomic_ref<T>(field).store(value, std::memory_order_relaxed);
}
}  // namespace

void Tx::before_word(void* field, std::size_t n) {
  prepare(offset_checked(field, n, "set_relaxed"), n);
  crash_point::before();
}

void Tx::set_relaxed(std::uint32_t& field, std::uint32_t value) {
  before_word(&field, sizeof field);
  store_relaxed(field, value);
  crash_point::after();
}

void Tx::set_relaxed(std::uint64_t& field, std::uint64_t value) {
  before_word(&field, sizeof field);
  store_relaxed(field, value);
  crash_point::after();
}

void Tx::move(void* dst, const void* src, std::size_t n) {
  offset_checked(src, n, "move");
  prepare(offset_checked(dst, n, "move"), n);
  crash_point::before();
  std::memmove(dst, src, n);
  crash_point::after();
}

void Tx::zero(void* dst, std::size_t n) {
  prepare(offset_checked(dst, n, "zero"), n);
  crash_point::before();
  std::memset(dst, 0, n);
  crash_point::after();
}

void Tx::fresh(void* dst, const void* src, std::size_t n) {
  std::uint64_t offset = offset_checked(dst, n, "fresh");
  if (!is_fresh(offset, n))
    fatal("tx.fresh of " + std::to_string(n) + " bytes at offset " + std::to_string(offset) +
          " that this tx did not allocate");
  crash_point::before();
  std::memmove(dst, src, n);
  crash_point::after();
}

bool Tx::write_file(std::uint32_t file, std::uint64_t offset, const void* src, std::size_t n) {
  if (n == 0) return true;
  if (file == 0 || file > region_.header().files || !in_bounds(region_, file, offset, n, false))
    fatal("tx.write_file of " + std::to_string(n) + " bytes at offset " + std::to_string(offset) + " of file " +
          std::to_string(file) + " outside every pool of that file");
  if (n > 0xffffffffu) fatal("tx write of more than 4 GiB");
  if (!append(RecordKind::kFileBytes, file, offset, static_cast<std::uint32_t>(n), nullptr)) return false;
  crash_point::before();
  bool ok = pwrite_all(region_.file(file), src, n, offset);
  crash_point::after();
  // A failed write may have written part: the record restores it at rollback.
  return ok;
}

void Tx::undo_punch(std::uint32_t file, std::uint64_t offset, std::uint64_t len) {
  if (st_.last_undo_punch) {  // the last record: extend it when this range follows it
    LogRecord* last = record_at(region_, st_.last_undo_punch);
    if (last->file == file && last->target + last->len == offset && last->len + len < 0xffffffffu) {
      // One aligned store: the record is valid before and after it; the page changes
      // hands only after it (a rollback that punches a page still free does no harm).
      barrier();
      std::atomic_ref<std::uint32_t>(last->len).store(static_cast<std::uint32_t>(last->len + len),
                                                      std::memory_order_relaxed);
      barrier();
      return;
    }
  }
  append(RecordKind::kUndoPunch, file, offset, static_cast<std::uint32_t>(len), nullptr);
}

// What commit() writes per deferred free: two logged words and a punch record.
constexpr std::uint64_t kReservePerFree = 2 * Tx::record_bytes(8) + sizeof(LogRecord);

void Tx::defer_pool_free(std::size_t pool, std::uint32_t page) {
  st_.deferred.push_back({0, static_cast<std::uint8_t>(pool), page});
  st_.commit_reserve += kReservePerFree;
}

void Tx::defer_slot_free(std::size_t table, std::uint32_t slot) {
  st_.deferred.push_back({1, static_cast<std::uint8_t>(table), slot});
  st_.commit_reserve += kReservePerFree + 3 * record_bytes(8);
}

void Tx::commit_punch(std::uint32_t file, std::uint64_t offset, std::uint64_t len) {
  st_.commit_punches.push_back({file, offset, len});
}

std::size_t Tx::log_room() const noexcept {
  std::uint64_t used = st_.tail + st_.commit_reserve;
  std::uint64_t total = region_.header().log_bytes;
  return used >= total ? 0 : static_cast<std::size_t>(total - used);
}

std::size_t Tx::log_used() const noexcept { return static_cast<std::size_t>(st_.tail - kLogHeaderSize); }

void Tx::commit() {
  if (done_) fatal("commit of a finished tx");
  // 1. The frees, now that nothing in this tx can take the pages again.
  st_.commit_reserve = 0;
  for (const auto& d : st_.deferred) {
    if (d.kind == 0) {
      PagePool(region_, d.index).release(*this, d.item);
    } else {
      SlotTable(region_, d.index).release(*this, d.item);
    }
  }
  // Their punches, merged into runs, as records to finish after a death past the commit.
  auto& punches = st_.commit_punches;
  std::sort(punches.begin(), punches.end(), [](const Region::Punch& a, const Region::Punch& b) {
    return a.file != b.file ? a.file < b.file : a.offset < b.offset;
  });
  std::size_t runs = 0;
  for (std::size_t i = 0; i < punches.size(); ++i) {
    if (runs && punches[runs - 1].file == punches[i].file &&
        punches[runs - 1].offset + punches[runs - 1].len == punches[i].offset &&
        punches[runs - 1].len + punches[i].len < 0xffffffffu) {
      punches[runs - 1].len += punches[i].len;
    } else {
      punches[runs++] = punches[i];
    }
  }
  punches.resize(runs);
  for (const auto& p : punches)
    append(RecordKind::kCommitPunch, p.file, p.offset, static_cast<std::uint32_t>(p.len), nullptr);

  // 2. The commit point, 3. the punches.
  LogHeader& log = log_header(region_);
  if (st_.count) {
    crash_point::before();
    store_state(log, punches.empty() ? 0 : (st_.count | kCommitted));
    crash_point::after();
    if (!punches.empty()) {
      for (const auto& p : punches) {
        crash_point::before();
        punch_or_die(region_, p.file, p.offset, p.len);
        crash_point::after();
      }
      crash_point::before();
      store_state(log, 0);
      crash_point::after();
    }
  }
  ++st_.stats.commits;
  finish();
}

void Tx::abort() {
  if (done_) return;
  auto settled = settle_log(region_);
  if (!settled) fatal("rolling back a tx: " + settled.error().what);
  ++st_.stats.rollbacks;
  finish();
}

void Tx::finish() {
  st_.tail = kLogHeaderSize;
  st_.count = 0;
  st_.last_undo_punch = 0;
  st_.commit_reserve = 0;
  st_.fresh.clear();
  st_.deferred.clear();
  st_.commit_punches.clear();
  st_.logged_count = 0;
  st_.recent_count = 0;
  if (++st_.tx_number == 0) {  // the tags wrapped: forget every entry once
    for (auto& e : st_.logged) e.tx = 0;
    st_.tx_number = 1;
  }
  st_.owner.store(std::thread::id{}, std::memory_order_relaxed);
  done_ = true;
  lock_.unlock();
}

}  // namespace hostchanfs::shm::persist
