#include "shm/data_region.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include <boost/container/small_vector.hpp>

#include "shm/store.hpp"

namespace hostchanfs::shm {

namespace {

// Where a page lives in the data memfd.
off_t data_offset(std::uint32_t value) {
  return static_cast<off_t>(std::uint64_t{page_number(value)} * kPageSize);
}

// The last entry of the run that starts at `it`: pages whose indexes follow each other, up
// to byte `end`, whose data pages follow each other too (one pread/pwrite). A read's run
// (`reading`) stops where written pages meet unwritten ones (those read as zeros, whatever
// their memfd pages hold); a write fills both alike.
const PageEntry* last_of_run(const PageEntry* it, const PageEntry* pages_end, std::uint64_t end, bool reading) {
  for (const PageEntry* next = it + 1; next != pages_end && next->index == it->index + 1 &&
                                       next->index * kPageSize < end &&
                                       (!reading || is_written(next->value) == is_written(it->value)) &&
                                       data_offset(next->value) == data_offset(it->value) + off_t{kPageSize};
       ++next)
    it = next;
  return it;
}

// A position in a list of source buffers, consumed in order.
class IovCursor {
 public:
  explicit IovCursor(std::span<const iovec> iov) : iov_(iov) {}
  // Append the next `len` bytes (fewer if the buffers end first) to `out` as slices.
  template <class Out>
  void take(std::size_t len, Out& out) {
    while (len > 0 && i_ < iov_.size()) {
      std::size_t n = std::min(len, iov_[i_].iov_len - off_);
      if (n) out.push_back(iovec{static_cast<char*>(iov_[i_].iov_base) + off_, n});
      len -= n;
      off_ += n;
      if (off_ == iov_[i_].iov_len) {
        ++i_;
        off_ = 0;
      }
    }
  }

 private:
  std::span<const iovec> iov_;
  std::size_t i_ = 0, off_ = 0;
};

// Copy all of `iov` to the region at `at`, or fail with the errno. Consumes `iov` (a
// short pwritev resumes mid-buffer).
Result<void> pwrite_all(int fd, std::span<iovec> iov, off_t at) {
  std::size_t k = 0;
  while (k < iov.size()) {
    ssize_t n = ::pwritev(fd, iov.data() + k,
                          static_cast<int>(std::min<std::size_t>(iov.size() - k, IOV_MAX)), at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? last_errc() : std::errc::io_error;
    at += n;
    auto left = static_cast<std::size_t>(n);  // skip what went, resume mid-buffer
    while (k < iov.size() && left >= iov[k].iov_len) left -= iov[k++].iov_len;
    if (left) {
      iov[k].iov_base = static_cast<char*>(iov[k].iov_base) + left;
      iov[k].iov_len -= left;
    }
  }
  return success();
}

// Copy `len` bytes of the region at `at` into `out`, or fail with the errno.
Result<void> pread_all(int fd, std::byte* out, std::size_t len, off_t at) {
  while (len > 0) {
    ssize_t n = ::pread(fd, out, len, at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? last_errc() : std::errc::io_error;
    out += n;
    len -= static_cast<std::size_t>(n);
    at += n;
  }
  return success();
}

}  // namespace

Result<void> DataRegion::read(std::span<const PageEntry> pages, std::uint64_t offset, std::span<std::byte> out) const {
  const std::uint64_t end = offset + out.size();
  const PageEntry* it = std::lower_bound(pages.data(), pages.data() + pages.size(), offset / kPageSize,
                                         [](const PageEntry& e, std::uint64_t i) { return e.index < i; });
  const PageEntry* pages_end = pages.data() + pages.size();
  for (std::uint64_t pos = offset; pos < end;) {
    std::byte* dst = out.data() + (pos - offset);
    if (it == pages_end || it->index > pos / kPageSize) {  // a hole, up to the next page
      std::uint64_t hole_end = it == pages_end ? end : std::min(end, it->index * kPageSize);
      std::memset(dst, 0, hole_end - pos);
      pos = hole_end;
      continue;
    }
    if (!is_written(it->value)) {  // reserved, never written: zeros (and a hole in the memfd)
      std::uint64_t page_end = std::min(end, (it->index + 1) * kPageSize);
      std::memset(dst, 0, page_end - pos);
      pos = page_end;
      ++it;
      continue;
    }
    off_t at = data_offset(it->value) + static_cast<off_t>(pos % kPageSize);
    it = last_of_run(it, pages_end, end, true);
    std::uint64_t run_end = std::min(end, (it->index + 1) * kPageSize);
    HC_TRYV(pread_all(fd_, dst, run_end - pos, at));
    pos = run_end;
    ++it;
  }
  return success();
}

DataRegion::Written DataRegion::write(std::span<const PageEntry> pages, std::uint64_t offset, std::uint64_t end,
                                      std::span<const iovec> data) const {
  Written w;
  IovCursor source(data);
  // A FUSE write comes in one or two buffers: its slices fit here without an allocation.
  boost::container::small_vector<iovec, 4> slices;
  const PageEntry* pages_end = pages.data() + pages.size();
  const PageEntry* it = std::lower_bound(pages.data(), pages_end, offset / kPageSize,
                                         [](const PageEntry& e, std::uint64_t i) { return e.index < i; });
  while (offset + w.bytes < end && it != pages_end) {
    std::uint64_t pos = offset + w.bytes;
    off_t at = data_offset(it->value) + static_cast<off_t>(pos % kPageSize);
    it = last_of_run(it, pages_end, end, false);
    std::uint64_t run_end = std::min(end, (it->index + 1) * kPageSize);
    slices.clear();
    source.take(run_end - pos, slices);
    if (auto put = pwrite_all(fd_, {slices.data(), slices.size()}, at); !put) {
      w.error = put.error();
      break;
    }
    w.bytes = run_end - offset;
    ++it;
  }
  return w;
}

bool DataRegion::zero(persist::Tx& tx, std::uint32_t page, std::uint64_t from, std::uint64_t to) const {
  static const std::byte zeros[kPageSize] = {};
  if (from >= to) return true;
  return tx.write_file(kDataFile, std::uint64_t{page} * kPageSize + from, zeros, to - from);
}

}  // namespace hostchanfs::shm
