// The store's own invariants, which the persistence layer runs after its own (the schema's
// check hook) at every attach, so that a daemon refuses a store it cannot trust with one
// line naming what is wrong:
//   - the superblock's limits match the region's capacities; the root is a directory;
//   - every page-map entry belongs to a live inode and claims its data page (so no data
//     page is used twice or leaked, with the layer's own check of the free stack); a
//     file's pages_held is its fork-0 and fork-2 entries, its xattr blob has the pages
//     its length needs; every write intent's pages are claimed too;
//   - every live directory entry is in both directory trees (and they hold nothing else),
//     lies in a live directory and names a live inode of its type;
//   - every inode's nlink is its names (a directory: 2 + its subdirectories), a
//     directory's size is 20 bytes per entry + 40, a subdirectory's ".." is its parent;
//   - pages_used is the pages the inodes hold and charge (data, long symlinks, xattrs in
//     whole pages, reservations of a fallocate in progress) plus the intents' pages, and
//     inodes_used counts inodes and extra hard links as tmpfs does.
#pragma once

#include "shm/persist/region.hpp"

namespace hostchanfs::shm {

void check_store(const persist::Region& region, persist::CheckContext& ctx);

}  // namespace hostchanfs::shm
