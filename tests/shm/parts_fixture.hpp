// The store's parts without a Store: a managed segment over heap memory, a Header for
// the Quota, a data region over a fresh memfd, and the PagePool and InodeTable over them,
// wired as Store::Impl wires them. For the unit tests of each part.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "shm/data_region.hpp"
#include "shm/inode_table.hpp"
#include "shm/layout.hpp"
#include "shm/page_pool.hpp"
#include "shm/quota.hpp"
#include "shm/segment.hpp"
#include "shm/slot_pool.hpp"
#include "sys/memfd.hpp"

namespace hostchanfs::shm::testing {

// A segment over heap memory, 8-byte aligned as the allocator needs.
class HeapSegment {
 public:
  explicit HeapSegment(std::size_t bytes = std::size_t{1} << 20)
      : memory_(bytes / sizeof(std::uint64_t)),
        segment_(bip::create_only, memory_.data(), memory_.size() * sizeof(std::uint64_t)) {}
  Segment& get() { return segment_; }

 private:
  std::vector<std::uint64_t> memory_;
  Segment segment_;
};

inline DataRegion data_region_of(std::uint64_t pages) {
  auto fd = make_memfd("parts-test-data", pages * kPageSize);
  if (!fd) throw std::runtime_error("memfd_create failed");
  return DataRegion(std::move(fd).value());
}

// Whether any byte of the memfd's [at, at + len) holds memory (SEEK_DATA finds it).
inline bool holds_memory(int fd, off_t at, off_t len) {
  off_t data = ::lseek(fd, at, SEEK_DATA);
  return data >= 0 && data < at + len;
}

class PartsTest : public ::testing::Test {
 protected:
  static constexpr std::uint64_t kQuotaPages = 16;
  static constexpr std::uint64_t kMaxInodes = 8;

  PartsTest()
      : data_(data_region_of(kQuotaPages)),
        page_slots_(make_in<SlotPool>(segment_.get(), kQuotaPages,
                                      alloc_in<std::uint32_t>(segment_.get()))),
        inode_slots_(make_in<SlotPool>(segment_.get(), kMaxInodes,
                                       alloc_in<std::uint32_t>(segment_.get()))),
        table_(new InodeRec[kMaxInodes + 2]()),
        header_(make_header()),
        quota_(*header_),
        pages_(*page_slots_, data_),
        inodes_(table_.get(), kMaxInodes, *inode_slots_, segment_.get(), quota_, pages_) {}

  static std::unique_ptr<Header> make_header() {
    auto h = std::make_unique<Header>();
    h->quota_pages = kQuotaPages;
    h->max_inodes = kMaxInodes;
    return h;
  }

  // A page table in the segment, as a new regular file gets.
  PageTable& new_page_table() {
    return *make_in<PageTable>(segment_.get(), alloc_in<PageMapValue>(segment_.get()));
  }

  HeapSegment segment_;
  DataRegion data_;
  SlotPool* page_slots_;
  SlotPool* inode_slots_;
  std::unique_ptr<InodeRec[]> table_;
  std::unique_ptr<Header> header_;
  Quota quota_;
  PagePool pages_;
  InodeTable inodes_;
};

}  // namespace hostchanfs::shm::testing
