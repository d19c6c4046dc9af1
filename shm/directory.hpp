// Directory: every directory's entries, as slots of the dirent table (the name inline)
// indexed by two B+trees of the meta region: dir.cookie, (dir, cookie) -> slot, for
// readdir; dir.name, (dir, SipHash(name), slot), for lookup (a hash keyed by the region's
// random seed: a client cannot make names collide on purpose; a collision costs one more
// name compare). Cookies grow monotonically per directory (InodeRecord::next_cookie) and
// are never reused, so an offset handed to the kernel stays meaningful while entries come
// and go; 1 and 2 are "." and "..", which are not stored.
//
// Callers hold the store's namespace lock: exclusive to change a directory (every change
// in the caller's tx), shared to read one. The trees are changed under it alone, so a
// reader holding it shared may walk them.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string_view>

#include "shm/persist/slot_table.hpp"
#include "shm/persist/store_schema.hpp"
#include "shm/store.hpp"

namespace hostchanfs::shm {

using persist::store::DirentRecord;
using persist::store::InodeRecord;

inline constexpr std::uint64_t kFirstCookie = 3;

inline std::string_view name_of(const DirentRecord& e) { return {e.name, e.name_len}; }
inline mode_t type_of(const DirentRecord& e) { return static_cast<mode_t>(e.type) << 12; }

class Directory {
 public:
  using Tx = persist::Tx;
  explicit Directory(const persist::Region& region);

  // The slot of entry `name` in directory `dir`, or nullopt.
  std::optional<std::uint32_t> find(Ino dir, std::string_view name) const;
  const DirentRecord& entry(std::uint32_t slot) const { return slots_.at<DirentRecord>(slot); }

  // A new entry with the directory's next cookie. ENOSPC when a slot or an index node
  // cannot be had (the caller's tx then rolls back what was done).
  Result<void> add(Tx& tx, Ino dir, InodeRecord& dir_rec, std::string_view name, Ino ino, mode_t mode);
  void remove(Tx& tx, std::uint32_t slot);
  // Point an existing entry at another inode (rename over it, exchange): its name and
  // cookie stay.
  void retarget(Tx& tx, std::uint32_t slot, Ino ino, mode_t mode);
  bool empty(Ino dir) const;

  // The entries of `dir` whose cookie is `cookie` or later, in cookie order, while
  // `f(entry)` returns true.
  template <class F>
  void list_from(Ino dir, std::uint64_t cookie, F&& f) const {
    const auto d = static_cast<std::uint32_t>(dir);
    for (auto c = by_cookie_.lower_bound(persist::store::cookie_key(d, std::max(cookie, kFirstCookie)));
         c.valid() && c.key().dir == d; c.next())
      if (!f(entry(c.value()))) break;
  }

  const persist::SlotTable& slots() const noexcept { return slots_; }

 private:
  const persist::Region& region_;
  persist::SlotTable slots_;
  persist::store::CookieTree by_cookie_;
  persist::store::NameTree by_name_;
};

}  // namespace hostchanfs::shm
