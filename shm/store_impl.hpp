// Store::Impl: the parts of the store wired together, the locks that make it thread-safe,
// and the few steps the public operations share. The operations themselves are grouped
// in store_names.cpp (lookup, attributes, links, rename, listings, handles),
// store_create.cpp (new inodes), store_data.cpp (read, write, fallocate, seek, copy) and
// store_xattrs.cpp; store.cpp makes, attaches and accounts.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <shared_mutex>
#include <string_view>
#include <utility>

#include "shm/inode_table.hpp"
#include "shm/layout.hpp"
#include "shm/page_pool.hpp"
#include "shm/quota.hpp"
#include "shm/store.hpp"
#include "shm/tmpfs_rules.hpp"

namespace hostchanfs::shm {

inline constexpr std::size_t kStripes = 256;

struct Store::Impl {
  explicit Impl(Regions r)
      : regions(std::move(r)),
        quota(*regions.header),
        pages(*regions.page_slots, regions.data),
        inodes(regions.table, regions.header->max_inodes, *regions.inode_slots, *regions.segment,
               quota, pages) {}

  Regions regions;  // both memfds, the meta mapping, the segment
  Quota quota;
  PagePool pages;
  InodeTable inodes;

  // The locks are process-local: a re-attaching daemon starts with fresh ones. Lock
  // order: ns_mutex, then at most one stripe, then PagePool's mutex (innermost). The
  // quota's counters and the lookup and open counts are atomics, under no lock of their
  // own. What each lock guards in an inode is written on InodeRec (shm/inode.hpp).
  //
  // Exclusive: every change of the namespace (create, link, unlink, rename, freeing an
  // inode slot). Shared: everything else. Directory contents change only under it
  // exclusive, so readers holding it shared walk them without a stripe.
  mutable std::shared_mutex ns_mutex;
  // Per inode (ino % kStripes): attributes, page table, xattrs. Taken after ns_mutex
  // (shared), one at a time: never two stripes at once.
  mutable std::array<std::shared_mutex, kStripes> stripes;
  // Releases between their start and their end. The kernel sends RELEASE after close(2)
  // returns, so a program's statfs right after closing (and unlinking) a file may be
  // handled while the release still runs; statfs waits for these, so that the space of
  // a closed, unlinked file is seen free, as on tmpfs. Process-local.
  mutable std::atomic<int> releases_in_flight{0};

  std::shared_mutex& stripe(Ino ino) const { return stripes[ino % kStripes]; }
  Segment& segment() const { return *regions.segment; }
  const DataRegion& data() const { return regions.data; }

  Attr locked_attr(Ino ino, const InodeRec& r) const {
    std::shared_lock lk(stripe(ino));
    return inodes.attr_of(ino, r);
  }
  // With no lock held: free `ino` if it is still that generation and unreferenced.
  void free_if_unreferenced(Ino ino, std::uint64_t generation) {
    std::unique_lock lk(ns_mutex);
    InodeRec* r = inodes.find(ino);
    if (r && r->generation == generation) inodes.settle(ino, *r);
  }

  // --- directory inodes (namespace lock held) ---
  Result<InodeRec*> dir_of(Ino ino) const {
    HC_TRY(r, inodes.get(ino));
    if (!is_dir(*r)) return std::errc::not_a_directory;
    return r;
  }
  // A directory that may receive a new entry: not one already removed (a removed
  // directory the kernel still holds, e.g. a cwd, must stay empty, or freeing it would
  // leak entries).
  Result<InodeRec*> live_dir_of(Ino ino) const {
    HC_TRY(r, dir_of(ino));
    if (r->nlink == 0) return std::errc::no_such_file_or_directory;
    return r;
  }
  // The inode that `name` in directory `dir` names.
  Result<std::pair<Ino, InodeRec*>> named(const InodeRec& dir, std::string_view name) const {
    const DirEntryRec* e = dir.dir->find(name);
    if (!e) return std::errc::no_such_file_or_directory;
    HC_TRY(r, inodes.get(e->ino));
    return std::pair{e->ino, r};
  }
  // An entry in, or out, and the directory's size with it (namespace lock exclusive).
  // add_entry throws bip::bad_alloc when the segment is full; then nothing changed.
  static void add_entry(InodeRec& dir, std::string_view name, Ino ino, mode_t mode) {
    dir.dir->add(name, ino, mode);
    dir.size += kBogoDirentSize;
  }
  static void remove_entry(InodeRec& dir, std::string_view name) {
    if (dir.dir->remove(name)) dir.size -= kBogoDirentSize;
  }
  // Is `ancestor` on the path from `ino` up to the root?
  bool is_ancestor(Ino ancestor, Ino ino) const;

  // A new inode of `mode` named `name` in `parent`, all or nothing (store_create.cpp).
  // It counts one kernel lookup, and one open handle when `open`.
  Result<Attr> make_node(Ino parent, std::string_view name, mode_t mode, dev_t rdev,
                         std::string_view symlink_target, const Caller& caller, bool open);
};

}  // namespace hostchanfs::shm
