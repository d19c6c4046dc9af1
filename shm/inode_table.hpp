// InodeTable: the fixed table of inode slots at the start of the meta region, and the
// lifetime of what each slot holds (the rule is written on InodeRec, shm/inode.hpp).
// Inode numbers are slot indices (ino 1 is the root, slot k of the pool is ino k + 2)
// with a generation that changes every time a slot is reused.
//
// Not locked itself: the caller holds the store's namespace lock, exclusive for
// allocate(), settle(), free() and anything that may free a slot, shared for the rest.
#pragma once

#include <cstdint>
#include <utility>

#include "shm/inode.hpp"
#include "shm/page_pool.hpp"
#include "shm/quota.hpp"
#include "shm/segment.hpp"
#include "shm/slot_pool.hpp"
#include "shm/store.hpp"

namespace hostchanfs::shm {

class InodeTable {
 public:
  InodeTable(InodeRec* table, std::uint64_t max_inodes, SlotPool& free_slots, Segment& segment,
             Quota& quota, PagePool& pages) noexcept
      : table_(table), max_inodes_(max_inodes), free_(free_slots), segment_(segment),
        quota_(quota), pages_(pages) {}

  // The live inode `ino`, or nullptr (0, out of range, or a free slot).
  InodeRec* find(Ino ino) const;
  // The same as a result: ESTALE for an inode that is not (or no longer) there.
  Result<InodeRec*> get(Ino ino) const;
  Attr attr_of(Ino ino, const InodeRec& r) const;

  // A fresh inode with one link, owned by `caller` (tmpfs's ownership rules), its times
  // now, its inode count charged. ENOSPC when the inode limit or the slots run out.
  Result<std::pair<Ino, InodeRec*>> allocate(mode_t mode, const InodeRec& parent,
                                             const Caller& caller);
  // Free the slot at once (a creation that failed halfway, or settle()).
  void free(Ino ino, InodeRec& r);
  // After a change that may have dropped the last name or handle: give the charge back
  // if no name and no handle is left, and free the slot if the kernel's lookups are
  // gone too. Namespace lock exclusive.
  void settle(Ino ino, InodeRec& r);

  // Drop the file pages [first, end) of `r`, refunding them.
  void drop_pages(InodeRec& r, std::uint64_t first, std::uint64_t end = UINT64_MAX);

  // The kernel's lookup count. forget() returns true when it reached 0; a count going
  // below 0 is logged (inode, count, change) and aborts: the kernel and the store no
  // longer agree on what exists.
  static void add_lookup(InodeRec& r) { r.lookups.fetch_add(1); }
  static bool forget(Ino ino, InodeRec& r, std::uint64_t n);
  // Open handles. close() returns true when it was the last handle of an inode without
  // a name (so it may be freed).
  static void open(InodeRec& r) { r.opens.fetch_add(1); }
  static bool close(InodeRec& r);

 private:
  void release_charge(InodeRec& r);
  void give_back_pages(InodeRec& r);

  InodeRec* table_;
  std::uint64_t max_inodes_;
  SlotPool& free_;
  Segment& segment_;
  Quota& quota_;
  PagePool& pages_;
};

}  // namespace hostchanfs::shm
