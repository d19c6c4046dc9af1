// The store's regions and how they are laid out. Everything in the meta memfd must stay
// valid when the region is mapped at another address by another process (offset_ptr
// only, no raw pointers, no process-local types). Bump kLayoutVersion on any change to
// Header or to a persistent record (InodeRec, Directory, PageTable, SlotPool, XattrList).
//
//   meta: [Header (one page) | InodeRec[max_inodes + 2] | managed segment]
//         the segment holds the two SlotPools (named), directories, page tables,
//         symlink targets and xattrs (anonymous, reached from their InodeRec).
//   data: quota_pages fixed 4 KiB pages (DataRegion).
//
// format_regions() lays out a fresh store, attach_regions() checks and maps one that
// format_regions() made, peek_usage() reads the counters without either.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "shm/data_region.hpp"
#include "shm/inode.hpp"
#include "shm/segment.hpp"
#include "shm/slot_pool.hpp"
#include "shm/store.hpp"
#include "sys/mapping.hpp"
#include "sys/result.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::shm {

inline constexpr char kMagic[8] = {'H', 'C', 'H', 'A', 'N', 'F', 'S', '\0'};
inline constexpr std::uint32_t kLayoutVersion = 1;

// The fixed header at offset 0 of the meta memfd.
struct Header {
  char magic[8];
  std::uint32_t version;
  std::uint32_t inode_rec_size;
  std::uint64_t quota_pages;
  std::uint64_t max_inodes;
  std::uint64_t table_offset;    // InodeRec[max_inodes + 2] (slot 0 unused, 1 = root)
  std::uint64_t segment_offset;  // the managed segment
  std::uint64_t segment_size;
  std::atomic<std::uint64_t> pages_used;   // quota pages in use (data, symlinks, xattrs)
  std::atomic<std::uint64_t> inodes_used;  // tmpfs's count: inodes plus extra hard links
};

// Named objects in the segment.
inline constexpr const char* kPagePoolName = "hostchanfs.pages";
inline constexpr const char* kInodePoolName = "hostchanfs.inodes";

// A formatted or attached store's regions, mapped, before the parts wrap them. Members
// go in reverse order: the segment before the mapping it lives in.
struct Regions {
  UniqueFd meta_fd;
  Mapping meta;                       // the whole meta region
  DataRegion data;
  std::unique_ptr<Segment> segment;
  Header* header = nullptr;
  InodeRec* table = nullptr;          // InodeRec[max_inodes + 2]
  SlotPool* page_slots = nullptr;     // the data pages' free list
  SlotPool* inode_slots = nullptr;    // the inode slots' free list
};

// The size of the meta region for a quota and an inode limit: the fixed bound on
// metadata memory (sparse: only the pages in use cost memory).
std::uint64_t meta_region_size(std::uint64_t quota_pages, std::uint64_t max_inodes);
std::uint64_t default_max_inodes(std::uint64_t size_bytes);

// Size both memfds and lay out a fresh store in them, with its root directory.
Result<Regions> format_regions(const StoreOptions& opts, UniqueFd meta_fd, UniqueFd data_fd);
// Map a store that format_regions() made; EPROTO if it is not one (magic, version,
// record size, region sizes) or is only half made.
Result<Regions> attach_regions(UniqueFd meta_fd, UniqueFd data_fd);

}  // namespace hostchanfs::shm
