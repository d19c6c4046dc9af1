// A regular file's pages: file page index -> data page number in the data region, ordered
// by index. A page that fallocate reserved but nothing wrote yet carries kUnwritten: it
// reads as zeros and is a hole for SEEK_DATA, as on tmpfs. Absent indexes are holes that
// cost nothing. Lives in the managed segment (persistent: part of kLayoutVersion).
//
// The functions below are the whole interface the store uses; a different index (a
// B+tree) replaces this file and data_region.cpp, nothing else.
#pragma once

#include <cstdint>
#include <functional>
#include <utility>

#include <boost/container/flat_map.hpp>

#include "shm/segment.hpp"

namespace hostchanfs::shm {

inline constexpr std::uint32_t kUnwritten = 0x80000000u;
using PageMapValue = std::pair<std::uint64_t, std::uint32_t>;
using PageTable = boost::container::flat_map<std::uint64_t, std::uint32_t,
                                             std::less<std::uint64_t>, Alloc<PageMapValue>>;

// The data page a table value names, without the flag.
inline std::uint32_t page_number(std::uint32_t value) noexcept { return value & ~kUnwritten; }
inline bool is_written(const PageMapValue& p) noexcept { return !(p.second & kUnwritten); }

// How many of the file pages [first, last] are present (written or reserved).
inline std::uint64_t count_present(const PageTable& pt, std::uint64_t first, std::uint64_t last) {
  std::uint64_t present = 0;
  for (auto it = pt.lower_bound(first); it != pt.end() && it->first <= last; ++it) ++present;
  return present;
}

// SEEK_DATA: the first written page at or after `index`, UINT64_MAX if there is none.
inline std::uint64_t next_data_page(const PageTable& pt, std::uint64_t index) {
  auto it = pt.lower_bound(index);
  while (it != pt.end() && !is_written(*it)) ++it;
  return it == pt.end() ? UINT64_MAX : it->first;
}

// SEEK_HOLE: the first page at or after `index` that is absent or unwritten.
inline std::uint64_t next_hole_page(const PageTable& pt, std::uint64_t index) {
  for (auto it = pt.lower_bound(index); it != pt.end() && it->first == index && is_written(*it); ++it)
    ++index;
  return index;
}

}  // namespace hostchanfs::shm
