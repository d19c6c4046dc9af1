// PageMap: which data page holds each page of every inode, in one B+tree of the meta region
// (persist::store::PageTree): (ino, fork, index) -> data page. Fork 0 is the file's data,
// fork 1 its xattr blob, fork 2 a long symlink's target. A page that fallocate reserved but
// nothing wrote yet carries kUnwritten: it reads as zeros and is a hole for SEEK_DATA, as
// on tmpfs. Absent indexes are holes that cost nothing; a page at any index below 2^51
// costs one 16-byte entry (no per-file structure).
//
// Locking: one tree for all inodes, so a split or a merge for one inode moves another's
// entries. Readers hold the store's namespace lock shared and the page-map lock shared
// (or the namespace lock exclusive); a tx that changes the tree holds the page-map lock
// exclusive, or the namespace lock exclusive (shm/store_impl.hpp). Entries of an inode
// change only under that inode's stripe (or the namespace lock exclusive), so its data
// pages stay its own after the page-map lock is dropped.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "shm/persist/page_pool.hpp"
#include "shm/persist/store_schema.hpp"
#include "shm/persist/tx.hpp"
#include "shm/store.hpp"

namespace hostchanfs::shm {

using persist::store::kUnwritten;

struct PageEntry {
  std::uint64_t index;
  std::uint32_t value;  // data page | kUnwritten
};
inline std::uint32_t page_number(std::uint32_t value) noexcept { return value & ~kUnwritten; }
inline bool is_written(std::uint32_t value) noexcept { return !(value & kUnwritten); }

class PageMap {
 public:
  using Tx = persist::Tx;
  using Fork = persist::store::Fork;
  explicit PageMap(const persist::Region& region) : tree_(region, persist::store::kPages) {}

  // The entries of `fork` of `ino` with first <= index <= last, in index order.
  void collect(Ino ino, Fork fork, std::uint64_t first, std::uint64_t last, std::vector<PageEntry>& out) const;
  std::optional<std::uint32_t> find(Ino ino, Fork fork, std::uint64_t index) const;
  // Whether `fork` of `ino` has a page at or after `first`.
  bool any_from(Ino ino, Fork fork, std::uint64_t first) const;
  // How many of the file pages [first, last] are present (written or reserved).
  std::uint64_t count(Ino ino, Fork fork, std::uint64_t first, std::uint64_t last) const;
  // SEEK_DATA: the first written file page at or after `index`, UINT64_MAX if none.
  std::uint64_t next_data(Ino ino, std::uint64_t index) const;
  // SEEK_HOLE: the first file page at or after `index` that is absent or unwritten.
  std::uint64_t next_hole(Ino ino, std::uint64_t index) const;

  // ENOSPC when the tree has no node for a split (cannot happen within the schema).
  Result<void> insert(Tx& tx, Ino ino, Fork fork, std::uint64_t index, std::uint32_t value);
  void update(Tx& tx, Ino ino, Fork fork, std::uint64_t index, std::uint32_t value);
  // The value that was there (the caller frees its page), or nullopt.
  std::optional<std::uint32_t> erase(Tx& tx, Ino ino, Fork fork, std::uint64_t index);

  // Drop at most `max` entries of `ino` in [from, to) of fork 0 (`all`: every fork, from
  // the first), giving their data pages back to `pool` when `tx` commits. `charged`
  // counts the pages that st_blocks shows (forks 0 and 2).
  static constexpr std::uint64_t kMaxDrop = 4096;
  struct Dropped {
    std::uint64_t entries = 0, charged = 0;
    bool done = false;
  };
  Dropped drop(Tx& tx, Ino ino, bool all, std::uint64_t from, std::uint64_t to, std::uint64_t max,
               const persist::PagePool& pool);

  // Every entry, in key order, for the checker: f(ino, fork, index, value).
  template <class F>
  void for_each(F&& f) const {
    for (auto c = tree_.begin(); c.valid(); c.next())
      f(Ino{c.key().ino}, persist::store::key_fork(c.key()), persist::store::key_index(c.key()), c.value());
  }

 private:
  persist::store::PageTree tree_;
};

}  // namespace hostchanfs::shm
