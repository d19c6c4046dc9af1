// File data: read, write, fallocate, seek, copy_file_range. Bytes move through the
// DataRegion outside the tx mutex: a write's new pages are taken in one tx (recorded in
// its intent), filled, then put in the page map in a second tx (shm/intents.hpp).
#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <optional>
#include <vector>

#include <boost/container/small_vector.hpp>

#include "shm/store_impl.hpp"

namespace hostchanfs::shm {

namespace {

// The piece size of copy_file_range, which moves data through a bounce buffer (what the
// kernel sends in one write at most, max_write), and of a long write: any 1 MiB of a file
// spans at most 257 pages, which one intent holds.
constexpr std::size_t kPiece = std::size_t{1} << 20;
static_assert(kPiece / kPageSize + 1 <= rec::kIntentPages);

// The checks every data call makes first: a regular file, or the errno tmpfs gives for
// the others (`other`: EINVAL for read/write, ENODEV for fallocate).
Result<void> check_regular(const InodeRecord& r, std::errc other) {
  if (is_dir(r)) return std::errc::is_a_directory;
  if (!is_reg(r)) return other;
  return success();
}

// `n` bytes of `source` from byte `skip` on, as slices (a piece of a long write).
using Slices = boost::container::small_vector<iovec, 4>;
Slices slice(std::span<const iovec> source, std::size_t skip, std::size_t n) {
  Slices out;
  for (const iovec& v : source) {
    if (n == 0) break;
    if (skip >= v.iov_len) {
      skip -= v.iov_len;
      continue;
    }
    std::size_t take = std::min(n, v.iov_len - skip);
    out.push_back(iovec{static_cast<char*>(v.iov_base) + skip, take});
    n -= take;
    skip = 0;
  }
  return out;
}

}  // namespace

Result<std::size_t> Store::read(Ino ino, std::uint64_t offset, std::span<std::byte> out) {
  auto& s = *impl_;
  std::shared_lock lk(s.ns_mutex);
  HC_TRY(r, s.inodes.get(ino));
  HC_TRYV(check_regular(*r, std::errc::invalid_argument));
  std::shared_lock ilk(s.stripe(ino));
  if (offset >= r->size) return std::size_t{0};
  std::uint64_t len = std::min<std::uint64_t>(out.size(), r->size - offset);  // no overflow
  thread_local std::vector<PageEntry> present;
  {
    std::shared_lock pm(s.page_map_lock);
    s.pages.collect(ino, rec::kFileFork, offset / kPageSize, (offset + len - 1) / kPageSize, present);
  }
  // The pages stay this file's while its stripe is held: only a writer of it frees them.
  HC_TRYV(s.data.read(present, offset, out.first(static_cast<std::size_t>(len))));
  return static_cast<std::size_t>(len);
}

Result<std::size_t> Store::write(Ino ino, std::uint64_t offset, std::span<const std::byte> data,
                                 const Caller& caller, const Request& req) {
  iovec one{const_cast<std::byte*>(data.data()), data.size()};
  return write(ino, offset, std::span<const iovec>(&one, 1), caller, req);
}

// One piece of a write (at most kPiece bytes): what the quota allows, all or nothing.
// `done` bytes of the request went before it; the outcome records done + this piece.
Result<std::size_t> Store::Impl::write_piece(Ino ino, InodeRecord& r, std::uint64_t offset,
                                             std::span<const iovec> source, std::size_t len,
                                             const Intents::Lease& lease, const Caller& caller,
                                             const Request& req, Mutation op, std::uint64_t done) {
  const std::uint64_t first = offset / kPageSize, last = (offset + len - 1) / kPageSize;
  thread_local std::vector<PageEntry> present, plan;
  thread_local std::vector<std::uint32_t> fresh;
  thread_local std::vector<bool> plan_fresh;
  {
    std::shared_lock pm(page_map_lock);
    pages.collect(ino, rec::kFileFork, first, last, present);
  }
  // Tx 1: pages for the missing indexes, in file order, as many as the quota gives; the
  // first missing page beyond that is where this write stops (a short write).
  const std::uint64_t missing = (last - first + 1) - present.size();
  fresh.clear();
  if (missing) {
    Tx tx(*region);
    const std::uint64_t got = quota.reserve_pages(tx, missing, true);
    for (std::uint64_t i = 0; i < got; ++i) {
      auto page = data_pool.alloc(tx);
      if (!page) persist::fatal("write: the data pool is empty though the quota had room");
      fresh.push_back(*page);
    }
    if (got) intents.hold(tx, lease, ino, fresh);
    tx.commit();
  }
  plan.clear();
  plan_fresh.clear();
  std::uint64_t stop = last + 1;
  std::size_t k = 0, f = 0;
  for (std::uint64_t index = first; index <= last; ++index) {
    if (k < present.size() && present[k].index == index) {
      plan.push_back(present[k++]);
      plan_fresh.push_back(false);
    } else if (f < fresh.size()) {
      plan.push_back({index, fresh[f++]});
      plan_fresh.push_back(true);
    } else {
      stop = index;
      break;
    }
  }
  const std::uint64_t end = std::min<std::uint64_t>(offset + len, stop * kPageSize);
  DataRegion::Written w;
  if (end > offset) w = data.write(plan, offset, end, source);
  // Tx 2: what was written goes into the file; pages taken and not written go back.
  const std::uint64_t written_end = offset + w.bytes;
  {
    std::unique_lock pm(page_map_lock);
    Tx tx(*region);
    std::uint64_t used = 0;
    for (std::size_t i = 0; i < plan.size(); ++i) {
      const PageEntry& p = plan[i];
      const bool touched = p.index * kPageSize < written_end;
      if (plan_fresh[i]) {
        if (touched) {
          if (!pages.insert(tx, ino, rec::kFileFork, p.index, p.value))
            persist::fatal("write: no page-map node though the schema sizes the arena for every page");
          ++used;
        } else {
          data_pool.free(tx, p.value);
        }
      } else if (touched && !is_written(p.value)) {
        pages.update(tx, ino, rec::kFileFork, p.index, page_number(p.value));
      }
    }
    if (used) tx.set(r.pages_held, r.pages_held + used);
    quota.unreserve_pages(tx, fresh.size() - used);  // taken, not written: a copy failed
    if (!fresh.empty()) intents.clear(tx, lease.index());
    if (w.bytes) {
      if (written_end > r.size) tx.set(r.size, written_end);
      touch_mc(tx, r, now());
      // A write by an unprivileged caller drops setuid, and setgid with group-exec.
      if (!caller.privileged && (r.mode & (S_ISUID | S_ISGID)))
        tx.set_relaxed(r.mode, static_cast<std::uint32_t>(without_suid_sgid(r.mode)));
      dedupe.record(tx, req, op, ino, 0, done + w.bytes);
    }
    tx.commit();
  }
  if (w.bytes == 0) return w.error.value_or(std::errc::no_space_on_device);
  return static_cast<std::size_t>(w.bytes);
}

Result<std::size_t> Store::Impl::write_all(Ino ino, std::uint64_t offset, std::span<const iovec> source,
                                           const Caller& caller, const Request& req, Mutation op,
                                           std::uint64_t done) {
  std::size_t len = 0;
  for (const iovec& v : source) len += v.iov_len;
  Intents::Lease lease = intents.acquire();  // before any lock
  std::shared_lock lk(ns_mutex);
  HC_TRY(r, inodes.get(ino));
  HC_TRYV(check_regular(*r, std::errc::invalid_argument));
  if (len == 0) return std::size_t{0};
  if (offset >= kMaxFileSize) return std::errc::file_too_large;
  len = static_cast<std::size_t>(std::min<std::uint64_t>(len, kMaxFileSize - offset));
  std::unique_lock ilk(stripe(ino));
  std::size_t copied = 0;
  while (copied < len) {
    const std::size_t n = std::min(len - copied, kPiece);
    Slices piece = slice(source, copied, n);
    auto put = write_piece(ino, *r, offset + copied, std::span<const iovec>(piece.data(), piece.size()), n, lease,
                           caller, req, op, done + copied);
    if (!put) {
      if (copied) break;  // report what was written; the next call gets the error
      return put.error();
    }
    copied += put.value();
    if (put.value() < n) break;
  }
  return copied;
}

Result<std::size_t> Store::write(Ino ino, std::uint64_t offset, std::span<const iovec> data, const Caller& caller,
                                 const Request& req) {
  auto& s = *impl_;
  if (auto done = s.replayed(req, Mutation::kWrite)) return static_cast<std::size_t>(done->value);
  return s.write_all(ino, offset, data, caller, req, Mutation::kWrite, 0);
}

// A plain read-then-write in pieces through a bounce buffer: the read's lock ends before
// the write takes the (possibly same) inode's write lock. Each piece's write records the
// bytes copied so far, so a resend is answered with what the dead daemon had copied.
Result<std::size_t> Store::copy_file_range(Ino in, std::uint64_t in_offset, Ino out, std::uint64_t out_offset,
                                           std::size_t len, unsigned flags, const Caller& caller,
                                           const Request& req) {
  if (flags != 0) return std::errc::invalid_argument;
  auto& s = *impl_;
  if (auto done = s.replayed(req, Mutation::kCopyFileRange)) return static_cast<std::size_t>(done->value);
  std::vector<std::byte> bounce(std::min(len, kPiece));
  std::size_t copied = 0;
  while (copied < len) {
    std::size_t want = std::min(len - copied, bounce.size());
    auto got = read(in, in_offset + copied, std::span(bounce.data(), want));
    if (!got) {
      if (copied) break;
      return got.error();
    }
    if (got.value() == 0) break;  // the end of the source
    iovec piece{bounce.data(), got.value()};
    auto put = s.write_all(out, out_offset + copied, std::span<const iovec>(&piece, 1), caller, req,
                           Mutation::kCopyFileRange, copied);
    if (!put) {
      if (copied) break;  // report what was copied; the next call gets the error
      return put.error();
    }
    copied += put.value();
    if (put.value() < got.value()) break;
  }
  return copied;
}

}  // namespace hostchanfs::shm
