#include "shm/inode_table.hpp"

#include <cstdlib>
#include <cstring>
#include <new>

#include "shm/tmpfs_rules.hpp"
#include "sys/log.hpp"

namespace hostchanfs::shm {

InodeRec* InodeTable::find(Ino ino) const {
  if (ino == 0 || ino > max_inodes_ + 1) return nullptr;
  InodeRec* r = &table_[ino];
  return load_mode(*r) == 0 ? nullptr : r;
}

Result<InodeRec*> InodeTable::get(Ino ino) const {
  InodeRec* r = find(ino);
  if (!r) return static_cast<std::errc>(ESTALE);
  return r;
}

Attr InodeTable::attr_of(Ino ino, const InodeRec& r) const {
  return Attr{.ino = ino,
              .generation = r.generation,
              .mode = r.mode,
              .nlink = r.nlink,
              .uid = r.uid,
              .gid = r.gid,
              .rdev = r.rdev,
              .size = r.size,
              .blocks = r.pages_held * (kPageSize / 512),
              .atime = get_time(r.atime_s, r.atime_ns),
              .mtime = get_time(r.mtime_s, r.mtime_ns),
              .ctime = get_time(r.ctime_s, r.ctime_ns)};
}

Result<std::pair<Ino, InodeRec*>> InodeTable::allocate(mode_t mode, const InodeRec& parent,
                                                       const Caller& caller) {
  if (!quota_.reserve_inode()) return std::errc::no_space_on_device;
  std::uint32_t slot = 0;
  if (!free_.take(slot)) {
    quota_.unreserve_inode();
    return std::errc::no_space_on_device;
  }
  Ino ino = slot + 2;  // slot 0 -> ino 2; ino 1 is the root, ino 0 is invalid
  InodeRec* r = &table_[ino];
  std::uint64_t gen = r->generation;
  new (r) InodeRec{};
  r->generation = gen;
  set_new_owner(*r, mode, parent, caller);
  r->nlink = 1;
  touch_new(*r, now());
  return std::pair{ino, r};
}

void InodeTable::free(Ino ino, InodeRec& r) {
  release_charge(r);
  // Pages or xattrs gained after the charge went (a write or setxattr on an unlinked
  // inode that only the kernel's lookups kept) go back too, or they would leak.
  give_back_pages(r);
  if (r.pages) segment_.destroy_ptr(r.pages.get());
  if (r.dir) segment_.destroy_ptr(r.dir.get());
  if (r.symlink) segment_.destroy_ptr(r.symlink.get());
  if (r.xattrs) segment_.destroy_ptr(r.xattrs.get());
  std::uint64_t gen = r.generation + 1;
  r.~InodeRec();
  std::memset(static_cast<void*>(&r), 0, sizeof r);
  r.generation = gen;
  free_.give(static_cast<std::uint32_t>(ino - 2));
}

void InodeTable::settle(Ino ino, InodeRec& r) {
  if (ino == kRootIno || r.nlink != 0 || r.opens.load() != 0) return;
  if (r.lookups.load() == 0) {
    free(ino, r);
  } else {
    release_charge(r);
  }
}

// tmpfs gives the charge back when the last name and the last open file go; the kernel's
// FORGET for a FUSE inode can come much later, and statfs must not wait for it.
void InodeTable::release_charge(InodeRec& r) {
  if (r.charge_released) return;
  give_back_pages(r);
  quota_.unreserve_inode();
  r.charge_released = 1;
}

void InodeTable::give_back_pages(InodeRec& r) {
  drop_pages(r, 0);
  quota_.unreserve_pages(r.pages_held + pages_for(r.xattr_bytes));  // long symlink, xattrs
  r.pages_held = 0;
  r.xattr_bytes = 0;
}

void InodeTable::drop_pages(InodeRec& r, std::uint64_t first, std::uint64_t end) {
  if (!r.pages) return;
  std::uint64_t n = pages_.drop(*r.pages, first, end);
  r.pages_held -= n;
  quota_.unreserve_pages(n);
}

bool InodeTable::forget(Ino ino, InodeRec& r, std::uint64_t n) {
  std::uint64_t before = r.lookups.fetch_sub(n);
  if (before < n) {
    auto log = log::get("shm");
    log->critical("inode {} (generation {}): the kernel forgot {} lookups, the store counted {}; "
                  "aborting: the kernel and the store no longer agree on what exists",
                  ino, r.generation, n, before);
    log->flush();
    std::abort();
  }
  return before == n;
}

bool InodeTable::close(InodeRec& r) { return r.opens.fetch_sub(1) == 1 && r.nlink == 0; }

}  // namespace hostchanfs::shm
