// Intents: writes that copy data into fresh pages without holding the tx mutex (which
// every metadata change takes). A write takes an intent (a slot of the superblock's
// Intent array), then:
//   tx 1  reserve the quota, take the pages, record them in the intent (hold)
//         copy the data into the pages, no tx open (they are in no file yet)
//   tx 2  put the pages in the page map, size and times, clear the intent (clear)
// A death between the two leaves pages owned by the intent alone; attach gives them back
// and refunds their quota (the write never completed; a resend redoes it).
//
// Which intents are taken is process-local (a free list under a mutex: a successor
// starts with all of them free, after attach has cleared them); what an intent holds is
// in the region. acquire() blocks while all are taken; take it before any store lock.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "shm/persist/store_schema.hpp"
#include "shm/persist/tx.hpp"
#include "shm/store.hpp"

namespace hostchanfs::shm {

class Intents {
 public:
  explicit Intents(persist::store::Superblock& sb);

  class Lease {
   public:
    Lease(Lease&& other) noexcept : owner_(other.owner_), index_(other.index_) { other.owner_ = nullptr; }
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    std::uint32_t index() const noexcept { return index_; }

   private:
    friend class Intents;
    Lease(Intents* owner, std::uint32_t index) : owner_(owner), index_(index) {}
    Intents* owner_;
    std::uint32_t index_;
  };
  Lease acquire();

  // In tx 1: the intent holds `pages` (at most kIntentPages), taken for inode `ino`.
  void hold(persist::Tx& tx, const Lease& lease, Ino ino, std::span<const std::uint32_t> pages);
  // In tx 2 (or when attach gives the pages back).
  void clear(persist::Tx& tx, std::uint32_t index);

  // Intents holding pages (at attach: writes a dead process left half done).
  template <class F>
  void for_each_held(F&& f) const {
    for (std::uint32_t i = 0; i < persist::store::kIntents; ++i)
      if (sb_.intents[i].count) f(i, sb_.intents[i]);
  }

 private:
  void release(std::uint32_t index);

  persist::store::Superblock& sb_;
  std::mutex mutex_;
  std::condition_variable freed_;
  std::vector<std::uint32_t> free_;
};

}  // namespace hostchanfs::shm
