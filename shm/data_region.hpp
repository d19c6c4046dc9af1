// DataRegion: the data memfd, quota_pages fixed 4 KiB pages, and the only code that moves
// file bytes in or out of it. Data moves with pread(2)/pwritev(2), one call per run of
// file pages that also follow each other in the region, never through a mapping: the
// daemon then holds no page-table entries for file data. A fresh page costs the kernel's
// allocation only, as on tmpfs, instead of a fault per 4 KiB (about 5 us a page on a
// paravirtualized guest, where a first touch through a mapping traps; measured 1.5 ms per
// MiB written against 0.2 ms), and punching a page out zaps no mapping and flushes no TLB.
//
// Which pages a file has is the PageTable's (file_pages.hpp); which pages are free is the
// PagePool's; this only copies, zeroes and punches. Thread-safe (positional I/O only);
// callers lock the page table they pass.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>

#include "shm/file_pages.hpp"
#include "sys/result.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::shm {

class DataRegion {
 public:
  DataRegion() noexcept = default;
  explicit DataRegion(UniqueFd fd) noexcept : fd_(std::move(fd)) {}
  int fd() const noexcept { return fd_.get(); }

  // Fill `out` with the file's bytes from `offset`: holes read as zeros, each run of
  // pages with one pread. The caller keeps `out` within the file's size.
  Result<void> read(const PageTable& pt, std::uint64_t offset, std::span<std::byte> out) const;

  struct Written {
    std::uint64_t bytes = 0;          // from `offset`, whole runs
    std::optional<std::errc> error;   // why it stopped short of `end`
  };
  // Copy `data` into the file's bytes [offset, end), each page of which is present, with
  // one pwritev per run; each run copied is marked written. A copy that fails (the kernel
  // out of memory) ends the write there.
  Written write(PageTable& pt, std::uint64_t offset, std::uint64_t end,
                std::span<const iovec> data) const;

  // Zero bytes [from, to) of file page `index` in place, if the file has that page (a
  // punch inside one page: the page stays). Cannot fail on a range inside the region.
  void zero(const PageTable& pt, std::uint64_t index, std::uint64_t from, std::uint64_t to) const;

  // Give these pages' memory back to the system at once, one punch per run (a page
  // taken later reads as zeros). `pages` ascending, page numbers without flags.
  void punch(std::span<const std::uint32_t> pages) const;

 private:
  UniqueFd fd_;
};

}  // namespace hostchanfs::shm
