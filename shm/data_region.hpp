// DataRegion: the data memfd, quota_pages fixed 4 KiB pages, and the only code that moves
// bytes in or out of it. Data moves with pread(2)/pwritev(2), one call per run of pages
// that also follow each other in the memfd, never through a mapping: the daemon then holds
// no page-table entries for file data. A fresh page costs the kernel's allocation only, as
// on tmpfs, instead of a fault per 4 KiB (about 5 us a page on a paravirtualized guest,
// where a first touch through a mapping traps; measured 1.5 ms per MiB written against
// 0.2 ms), and punching a page out zaps no mapping and flushes no TLB.
//
// Which pages a file has is the PageMap's; which pages are free is the data pool's
// (persist::PagePool); this only copies and zeroes. A page fresh in a tx (just taken from
// the pool) is written directly: a rollback punches it. A page in use is changed in place
// only through Tx::write_file (zero()), which logs its old bytes. Thread-safe (positional
// I/O only); callers hold the locks of the pages they pass.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "shm/page_map.hpp"
#include "shm/persist/tx.hpp"
#include "sys/result.hpp"

namespace hostchanfs::shm {

inline constexpr std::uint32_t kDataFile = 1;  // the data memfd is the region's extra file 1

class DataRegion {
 public:
  explicit DataRegion(int fd) noexcept : fd_(fd) {}
  int fd() const noexcept { return fd_; }

  // Fill `out` with the bytes from byte `offset` of a page sequence whose present pages
  // are `pages` (index order): absent and unwritten pages read as zeros, each run of
  // adjacent data pages with one pread.
  Result<void> read(std::span<const PageEntry> pages, std::uint64_t offset, std::span<std::byte> out) const;

  struct Written {
    std::uint64_t bytes = 0;          // from `offset`, whole runs
    std::optional<std::errc> error;   // why it stopped short of `end`
  };
  // Copy `data` into bytes [offset, end) of a page sequence whose pages are `pages` (one
  // for every index of the range, index order), one pwritev per run. A copy that fails
  // (the kernel out of memory) ends the write there.
  Written write(std::span<const PageEntry> pages, std::uint64_t offset, std::uint64_t end,
                std::span<const iovec> data) const;

  // Bytes [from, to) of data page `page` in use = zeros, undo-logged in `tx`. false with
  // errno when the memfd cannot be read or written.
  bool zero(persist::Tx& tx, std::uint32_t page, std::uint64_t from, std::uint64_t to) const;

 private:
  int fd_;
};

}  // namespace hostchanfs::shm
