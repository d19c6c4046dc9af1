// The store's parts without a Store: a freshly formatted store's regions (a small quota,
// a few inodes) and each part over them, wired as Store::Impl wires them. For the unit
// tests of each part; every change goes through a tx, as in the store.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

#include "shm/data_region.hpp"
#include "shm/directory.hpp"
#include "shm/inode_table.hpp"
#include "shm/layout.hpp"
#include "shm/page_map.hpp"
#include "shm/persist/page_pool.hpp"
#include "shm/persist/store_schema.hpp"
#include "shm/persist/tx.hpp"
#include "shm/quota.hpp"
#include "sys/memfd.hpp"

namespace hostchanfs::shm::testing {

namespace rec = persist::store;
using persist::Tx;

// Whether any byte of the memfd's [at, at + len) holds memory (SEEK_DATA finds it).
inline bool holds_memory(int fd, off_t at, off_t len) {
  off_t data = ::lseek(fd, at, SEEK_DATA);
  return data >= 0 && data < at + len;
}

inline Regions format_for_test(const StoreOptions& opts) {
  auto meta = make_memfd("parts-test-meta", 0);
  auto data = make_memfd("parts-test-data", 0);
  if (!meta || !data) throw std::runtime_error("memfd_create failed");
  auto r = format_regions(opts, std::move(meta).value(), std::move(data).value());
  if (!r) throw std::runtime_error("format_regions: " + r.error().what);
  return std::move(r).value();
}

class PartsTest : public ::testing::Test {
 protected:
  static constexpr std::uint64_t kQuotaPages = 16;
  static constexpr std::uint64_t kMaxInodes = 8;

  PartsTest()
      : regions_(format_for_test(StoreOptions{.size_bytes = kQuotaPages * kPageSize, .max_inodes = kMaxInodes})),
        region_(*regions_.meta), sb_(region_.user_as<rec::Superblock>()), quota_(sb_), inodes_(region_),
        dirs_(region_), pages_(region_), pool_(region_, rec::kDataPool), data_(regions_.data.get()) {}

  // `f(tx)` in one committed tx.
  template <class F>
  void in_tx(F&& f) {
    Tx tx(region_);
    f(tx);
    tx.commit();
  }
  // A data page from the pool, in a tx of its own.
  std::uint32_t take_page() {
    std::uint32_t page = 0;
    in_tx([&](Tx& tx) {
      auto p = pool_.alloc(tx);
      if (!p) throw std::runtime_error("the data pool is empty");
      page = *p;
    });
    return page;
  }
  // A record as a new inode gets it (the caller fills the rest).
  static InodeRecord record(mode_t mode, std::uint32_t nlink = 1) {
    InodeRecord r{};
    r.mode = mode;
    r.nlink = nlink;
    r.work_from = rec::kNoWork;
    if (S_ISDIR(mode)) {
      r.size = 40;
      r.next_cookie = 3;
      r.parent = kRootIno;
    }
    return r;
  }
  std::string check() {
    auto c = region_.check(persist::CheckLevel::kDeep);
    return c ? "" : c.error().what;
  }

  Regions regions_;
  persist::Region& region_;
  rec::Superblock& sb_;
  Quota quota_;
  InodeTable inodes_;
  Directory dirs_;
  PageMap pages_;
  persist::PagePool pool_;
  DataRegion data_;
};

}  // namespace hostchanfs::shm::testing
