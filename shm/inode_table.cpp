#include "shm/inode_table.hpp"

#include <cstdlib>

#include "shm/persist/tx.hpp"
#include "shm/tmpfs_rules.hpp"
#include "sys/log.hpp"

namespace hostchanfs::shm {

InodeRecord* InodeTable::find(Ino ino) const {
  if (ino == 0 || ino > slots_.capacity()) return nullptr;
  std::uint32_t slot = slot_of(ino);
  return slots_.live(slot) ? &slots_.at<InodeRecord>(slot) : nullptr;
}

InodeRecord* InodeTable::find(Ino ino, std::uint64_t generation) const {
  InodeRecord* r = find(ino);
  return r && slots_.generation(slot_of(ino)) == generation ? r : nullptr;
}

Result<InodeRecord*> InodeTable::get(Ino ino) const {
  InodeRecord* r = find(ino);
  if (!r) return static_cast<std::errc>(ESTALE);
  return r;
}

Attr InodeTable::attr_of(Ino ino, const InodeRecord& r) const {
  return Attr{.ino = ino,
              .generation = generation(ino),
              .mode = load_mode(r),
              .nlink = r.nlink,
              .uid = r.uid,
              .gid = r.gid,
              .rdev = r.rdev,
              .size = r.size,
              .blocks = r.pages_held * (kPageSize / 512),
              .atime = get_time(r.atime_s, r.atime_ns),
              .mtime = get_time(r.mtime_s, r.mtime_ns),
              .ctime = get_time(r.ctime_s, r.ctime_ns),
              .opens = r.opens};
}

Result<std::pair<Ino, InodeRecord*>> InodeTable::allocate(Tx& tx, Quota& quota, const InodeRecord& init) {
  if (!quota.reserve_inode(tx)) return std::errc::no_space_on_device;
  auto slot = slots_.alloc(tx);
  if (!slot) {
    quota.unreserve_inode(tx);
    return std::errc::no_space_on_device;
  }
  InodeRecord& r = slots_.at<InodeRecord>(*slot);
  tx.fresh(&r, &init, sizeof init);
  return std::pair{ino_of(*slot), &r};
}

bool InodeTable::forget(Ino ino, std::uint64_t n) const {
  std::uint64_t before = lookup_cell(ino).fetch_sub(n);
  if (before < n) {
    auto log = log::get("shm");
    log->critical("inode {} (generation {}): the kernel forgot {} lookups, the store counted {}; "
                  "aborting: the kernel and the store no longer agree on what exists",
                  ino, generation(ino), n, before);
    log->flush();
    std::abort();
  }
  return before == n;
}

}  // namespace hostchanfs::shm
