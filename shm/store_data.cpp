// File data: read, write, fallocate, seek, copy_file_range. The bytes move through the
// DataRegion; the pages come from the PagePool once the Quota has granted them.
#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <optional>
#include <vector>

#include "shm/store_impl.hpp"

namespace hostchanfs::shm {

namespace {

// The piece size of copy_file_range, which moves data through a bounce buffer: what the
// kernel sends in one write at most (max_write).
constexpr std::size_t kCopyChunk = std::size_t{1} << 20;

// The checks every data call makes first: a regular file, or the errno tmpfs gives for
// the others (`other`: EINVAL for read/write, ENODEV for fallocate).
Result<void> check_regular(const InodeRec& r, std::errc other) {
  if (is_dir(r)) return std::errc::is_a_directory;
  if (!is_reg(r)) return other;
  return success();
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
  HC_TRYV(s.data().read(*r->pages, offset, out.first(static_cast<std::size_t>(len))));
  return static_cast<std::size_t>(len);
}

Result<std::size_t> Store::write(Ino ino, std::uint64_t offset, std::span<const std::byte> data,
                                 const Caller& caller) {
  iovec one{const_cast<std::byte*>(data.data()), data.size()};
  return write(ino, offset, std::span<const iovec>(&one, 1), caller);
}

Result<std::size_t> Store::write(Ino ino, std::uint64_t offset, std::span<const iovec> data,
                                 const Caller& caller) {
  std::size_t len = 0;
  for (const iovec& v : data) len += v.iov_len;
  auto& s = *impl_;
  std::shared_lock lk(s.ns_mutex);
  HC_TRY(r, s.inodes.get(ino));
  HC_TRYV(check_regular(*r, std::errc::invalid_argument));
  if (len == 0) return std::size_t{0};
  if (offset >= kMaxFileSize) return std::errc::file_too_large;
  len = static_cast<std::size_t>(std::min<std::uint64_t>(len, kMaxFileSize - offset));
  std::unique_lock ilk(s.stripe(ino));
  auto& pt = *r->pages;

  // Which pages of the range are missing; reserve as many as the quota allows.
  std::uint64_t first = offset / kPageSize, last = (offset + len - 1) / kPageSize;
  std::uint64_t missing = (last - first + 1) - count_present(pt, first, last);
  std::uint64_t reserved = missing ? s.quota.reserve_pages(missing, true) : 0;
  std::uint64_t used = 0;

  // Allocate the missing pages first, in file order and as many as the quota gave; the
  // first missing page beyond that is where this write stops (a short write).
  std::uint64_t stop = last + 1;
  for (std::uint64_t index = first; missing && index <= last; ++index) {
    if (pt.find(index) != pt.end()) continue;
    if (used == reserved) {
      stop = index;
      break;
    }
    std::uint32_t page = s.pages.take();
    try {
      pt.emplace(index, page);
    } catch (const bip::bad_alloc&) {
      s.pages.put_back(page);
      stop = index;
      break;
    }
    ++used;
  }
  r->pages_held += used;

  // Copy up to the stop; a copy that fails (the kernel out of memory) ends the write there.
  std::uint64_t end = std::min<std::uint64_t>(offset + len, stop * kPageSize);
  DataRegion::Written w = s.data().write(pt, offset, end, data);
  s.quota.unreserve_pages(reserved - used);
  if (w.bytes == 0) return w.error.value_or(std::errc::no_space_on_device);
  r->size = std::max<std::uint64_t>(r->size, offset + w.bytes);
  touch_mc(*r, now());
  // A write by an unprivileged caller drops setuid, and setgid with group-exec.
  if (!caller.privileged && (r->mode & (S_ISUID | S_ISGID)))
    store_mode(*r, without_suid_sgid(r->mode));
  return static_cast<std::size_t>(w.bytes);
}

Result<void> Store::fallocate(Ino ino, int mode, std::uint64_t offset, std::uint64_t len) {
  if (len == 0) return std::errc::invalid_argument;
  bool punch = mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
  if (!punch && mode != 0 && mode != FALLOC_FL_KEEP_SIZE) return std::errc::operation_not_supported;
  if (offset + len > kMaxFileSize || offset + len < offset) return std::errc::file_too_large;
  auto& s = *impl_;
  std::shared_lock lk(s.ns_mutex);
  HC_TRY(r, s.inodes.get(ino));
  HC_TRYV(check_regular(*r, std::errc::no_such_device));
  std::unique_lock ilk(s.stripe(ino));
  auto& pt = *r->pages;
  std::uint64_t end = offset + len;
  timespec ts = now();

  if (punch) {
    std::uint64_t first_full = pages_for(offset), end_full = end / kPageSize;
    if (first_full > end_full) {  // inside one page
      s.data().zero(pt, offset / kPageSize, offset % kPageSize, end % kPageSize);
    } else {
      if (offset % kPageSize) s.data().zero(pt, offset / kPageSize, offset % kPageSize, kPageSize);
      if (end % kPageSize) s.data().zero(pt, end / kPageSize, 0, end % kPageSize);
      s.inodes.drop_pages(*r, first_full, end_full);
    }
    touch_mc(*r, ts);
    return success();
  }

  // Reserve every missing page or none.
  std::uint64_t first = offset / kPageSize, last = (end - 1) / kPageSize;
  std::uint64_t missing = (last - first + 1) - count_present(pt, first, last);
  if (missing && !s.quota.reserve_pages(missing, false)) return std::errc::no_space_on_device;
  try {
    pt.reserve(pt.size() + missing);
  } catch (const bip::bad_alloc&) {
    s.quota.unreserve_pages(missing);
    return std::errc::no_space_on_device;
  }
  std::uint64_t added = 0;
  for (std::uint64_t index = first; index <= last && added < missing; ++index) {
    if (pt.find(index) != pt.end()) continue;
    pt.emplace(index, s.pages.take() | kUnwritten);  // capacity reserved: cannot throw
    ++added;
  }
  r->pages_held += added;
  if (mode == 0 && end > r->size) r->size = end;
  touch_c(*r, ts);
  return success();
}

Result<std::uint64_t> Store::seek(Ino ino, std::uint64_t offset, int whence) {
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return std::errc::invalid_argument;
  std::shared_lock lk(impl_->ns_mutex);
  HC_TRY(r, impl_->inodes.get(ino));
  std::shared_lock ilk(impl_->stripe(ino));
  if (offset >= r->size) return std::errc::no_such_device_or_address;
  if (!is_reg(*r)) return whence == SEEK_DATA ? offset : r->size;
  std::uint64_t index = offset / kPageSize;
  if (whence == SEEK_DATA) {
    std::uint64_t data = next_data_page(*r->pages, index);
    if (data == UINT64_MAX) return std::errc::no_such_device_or_address;
    std::uint64_t pos = std::max(offset, data * kPageSize);
    if (pos >= r->size) return std::errc::no_such_device_or_address;
    return pos;
  }
  return std::min(r->size, std::max(offset, next_hole_page(*r->pages, index) * kPageSize));
}

// A plain read-then-write in pieces through a bounce buffer: the read's lock ends before
// the write takes the (possibly same) inode's write lock.
Result<std::size_t> Store::copy_file_range(Ino in, std::uint64_t in_offset, Ino out,
                                           std::uint64_t out_offset, std::size_t len,
                                           unsigned flags, const Caller& caller) {
  if (flags != 0) return std::errc::invalid_argument;
  std::vector<std::byte> bounce(std::min(len, kCopyChunk));
  std::size_t copied = 0;
  while (copied < len) {
    std::size_t want = std::min(len - copied, bounce.size());
    auto got = read(in, in_offset + copied, std::span(bounce.data(), want));
    if (!got) {
      if (copied) break;
      return got.error();
    }
    if (got.value() == 0) break;  // the end of the source
    auto put = write(out, out_offset + copied,
                     std::span<const std::byte>(bounce.data(), got.value()), caller);
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
