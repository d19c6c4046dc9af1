// InodeTable: the inode slots of the meta region (persist::SlotTable of InodeRecord).
// Inode numbers are slot indices + 1 (slot 0 is the root, ino 1), with the slot's
// generation, which the table bumps every time the slot is freed, so (ino, generation)
// never names two inodes.
//
// The kernel's lookup count is the slot's volatile cell: an atomic, changed outside any tx
// (a lookup changes nothing else), never rolled back. It survives a daemon's death with
// the region, as the kernel's own count survives on the FUSE connection. A count made just
// before a death whose reply never reached the kernel over-counts: the inode then lingers
// until unmount (bounded, and never a use after free). Every other field changes in a tx.
//
// Not locked itself: the caller holds the store's locks (shm/store_impl.hpp).
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <utility>

#include "shm/persist/slot_table.hpp"
#include "shm/persist/store_schema.hpp"
#include "shm/quota.hpp"
#include "shm/store.hpp"

namespace hostchanfs::shm {

using persist::store::InodeRecord;

// The type bits of a mode are read without the inode's lock (they never change); the
// permission bits change under it, with Tx::set_relaxed: a relaxed atomic load.
inline mode_t load_mode(const InodeRecord& r) {
  return std::atomic_ref<std::uint32_t>(const_cast<std::uint32_t&>(r.mode)).load(std::memory_order_relaxed);
}
inline bool is_dir(const InodeRecord& r) { return S_ISDIR(load_mode(r)); }
inline bool is_reg(const InodeRecord& r) { return S_ISREG(load_mode(r)); }

class InodeTable {
 public:
  using Tx = persist::Tx;
  explicit InodeTable(const persist::Region& region) : slots_(region, persist::store::kInodes) {}

  static Ino ino_of(std::uint32_t slot) noexcept { return Ino{slot} + 1; }
  static std::uint32_t slot_of(Ino ino) noexcept { return static_cast<std::uint32_t>(ino - 1); }

  // The live inode `ino`, or nullptr (0, out of range, or a free slot).
  InodeRecord* find(Ino ino) const;
  // The same as a result: ESTALE for an inode that is not (or no longer) there.
  Result<InodeRecord*> get(Ino ino) const;
  // The live inode `ino` if it is still that generation.
  InodeRecord* find(Ino ino, std::uint64_t generation) const;
  std::uint64_t generation(Ino ino) const { return slots_.generation(slot_of(ino)); }
  Attr attr_of(Ino ino, const InodeRecord& r) const;

  // A fresh inode holding `init` (the caller fills owner, mode, times, size), its inode
  // count charged. ENOSPC when the inode limit or the slots run out (nothing changed).
  Result<std::pair<Ino, InodeRecord*>> allocate(Tx& tx, Quota& quota, const InodeRecord& init);
  // The slot goes when `tx` commits (the caller has given everything it held back).
  void free(Tx& tx, Ino ino) { slots_.free(tx, slot_of(ino)); }

  // The kernel's lookup count. forget() returns true when it reached 0; a count going
  // below 0 is logged (inode, count, change) and aborts: the kernel and the store no
  // longer agree on what exists.
  void add_lookup(Ino ino) const { lookup_cell(ino).fetch_add(1); }
  void set_lookups(Ino ino, std::uint64_t n) const { lookup_cell(ino).store(n); }
  std::uint64_t lookups(Ino ino) const { return lookup_cell(ino).load(); }
  bool forget(Ino ino, std::uint64_t n) const;

  const persist::SlotTable& slots() const noexcept { return slots_; }

 private:
  std::atomic<std::uint64_t>& lookup_cell(Ino ino) const {
    return slots_.cell(slot_of(ino), persist::store::kLookups);
  }
  persist::SlotTable slots_;
};

}  // namespace hostchanfs::shm
