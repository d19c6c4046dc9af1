// A file's space: fallocate (reserving pages, punching holes) and seek (SEEK_DATA,
// SEEK_HOLE). A fallocate or a punch of many pages records its range in the inode in the
// tx that charges (or zeroes) it, then adds or drops the pages in txs of their own, which
// attach finishes after a death: wholly there, or (before that first tx) wholly absent.
#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <optional>

#include "shm/store_impl.hpp"

namespace hostchanfs::shm {

namespace {

// The data page of file page `index`, if it has one that was written.
std::optional<std::uint32_t> written_page(const Store::Impl& s, Ino ino, std::uint64_t index) {
  auto v = s.pages.find(ino, rec::kFileFork, index);
  if (!v || !is_written(*v)) return std::nullopt;
  return page_number(*v);
}

// Bytes [offset, end) of the file read as zeros afterwards: partial pages zeroed, the
// whole pages between dropped as the inode's work. What the page map says is looked up
// before the tx (the page-map lock comes before the tx mutex).
struct Punch {
  std::uint64_t offset, end, first_full, end_full;
  std::optional<std::uint32_t> head, tail;  // written pages holding the ends
  bool whole = false;                       // whole pages between to drop
};
Punch plan_punch(const Store::Impl& s, Ino ino, std::uint64_t offset, std::uint64_t end) {
  Punch p{offset, end, pages_for(offset), end / kPageSize, std::nullopt, std::nullopt, false};
  std::shared_lock pm(s.page_map_lock);
  if (offset % kPageSize) p.head = written_page(s, ino, offset / kPageSize);
  if (end % kPageSize && p.first_full <= p.end_full) p.tail = written_page(s, ino, end / kPageSize);
  p.whole = p.first_full < p.end_full && s.pages.count(ino, rec::kFileFork, p.first_full, p.end_full - 1) != 0;
  return p;
}
Result<void> punch_in(const Store::Impl& s, Tx& tx, InodeRecord& r, const Punch& p) {
  if (p.first_full > p.end_full) {  // inside one page
    if (p.head && !s.data.zero(tx, *p.head, p.offset % kPageSize, p.end % kPageSize)) return last_errc();
    return success();
  }
  if (p.head && !s.data.zero(tx, *p.head, p.offset % kPageSize, kPageSize)) return last_errc();
  if (p.tail && !s.data.zero(tx, *p.tail, 0, p.end % kPageSize)) return last_errc();
  if (p.whole) {
    tx.set(r.work_from, p.first_full);
    tx.set(r.work_to, p.end_full);
  }
  return success();
}

}  // namespace

Result<void> Store::fallocate(Ino ino, int mode, std::uint64_t offset, std::uint64_t len, const Request& req) {
  if (len == 0) return std::errc::invalid_argument;
  bool punch = mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
  if (!punch && mode != 0 && mode != FALLOC_FL_KEEP_SIZE) return std::errc::operation_not_supported;
  if (offset + len > kMaxFileSize || offset + len < offset) return std::errc::file_too_large;
  auto& s = *impl_;
  if (s.replayed(req, Mutation::kFallocate)) return success();
  std::shared_lock lk(s.ns_mutex);
  HC_TRY(r, s.inodes.get(ino));
  if (is_dir(*r)) return std::errc::is_a_directory;
  if (!is_reg(*r)) return std::errc::no_such_device;
  std::unique_lock ilk(s.stripe(ino));
  const std::uint64_t end = offset + len;
  const timespec ts = now();
  const std::uint64_t first = offset / kPageSize, last = (end - 1) / kPageSize;
  Punch hole{};
  std::uint64_t missing = 0;
  if (punch) {
    hole = plan_punch(s, ino, offset, end);
  } else {
    std::shared_lock pm(s.page_map_lock);
    missing = (last - first + 1) - s.pages.count(ino, rec::kFileFork, first, last);
  }
  Tx tx(*s.region);
  if (punch) {
    HC_TRYV(punch_in(s, tx, *r, hole));
    touch_mc(tx, *r, ts);
  } else {
    // Reserve every missing page or none; the pages come as the inode's work.
    if (missing) {
      if (!s.quota.reserve_pages(tx, missing, false)) return std::errc::no_space_on_device;
      tx.set(r->flags, r->flags | rec::kFilling);
      tx.set(r->work_from, first);
      tx.set(r->work_to, last + 1);
    }
    if (mode == 0 && end > r->size) tx.set(r->size, end);
    touch_c(tx, *r, ts);
  }
  s.dedupe.record(tx, req, Mutation::kFallocate, ino);
  tx.commit();
  s.run_work_shared(ino, *r);
  return success();
}

Result<std::uint64_t> Store::seek(Ino ino, std::uint64_t offset, int whence) {
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return std::errc::invalid_argument;
  auto& s = *impl_;
  std::shared_lock lk(s.ns_mutex);
  HC_TRY(r, s.inodes.get(ino));
  std::shared_lock ilk(s.stripe(ino));
  if (offset >= r->size) return std::errc::no_such_device_or_address;
  if (!is_reg(*r)) return whence == SEEK_DATA ? offset : r->size;
  const std::uint64_t index = offset / kPageSize;
  std::shared_lock pm(s.page_map_lock);
  if (whence == SEEK_DATA) {
    std::uint64_t data = s.pages.next_data(ino, index);
    if (data == UINT64_MAX) return std::errc::no_such_device_or_address;
    std::uint64_t pos = std::max(offset, data * kPageSize);
    if (pos >= r->size) return std::errc::no_such_device_or_address;
    return pos;
  }
  return std::min(r->size, std::max(offset, s.pages.next_hole(ino, index) * kPageSize));
}

}  // namespace hostchanfs::shm
