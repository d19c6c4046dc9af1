#include "shm/layout.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <new>

#include "shm/quota.hpp"
#include "shm/tmpfs_rules.hpp"
#include "sys/memfd.hpp"

namespace hostchanfs::shm {

namespace {

std::uint64_t round_up(std::uint64_t v, std::uint64_t to) { return (v + to - 1) / to * to; }

std::uint64_t table_size(std::uint64_t max_inodes) {
  return round_up((max_inodes + 2) * sizeof(InodeRec), kPageSize);
}

bool is_store_header(const Header& h) {
  return std::memcmp(h.magic, kMagic, sizeof h.magic) == 0 && h.version == kLayoutVersion;
}

// Own both regions, the meta one mapped whole, and point at its header and table.
Result<Regions> map_regions(UniqueFd meta_fd, std::uint64_t meta_size, UniqueFd data_fd) {
  Regions r;
  HC_TRY(meta_map, Mapping::map_shared(meta_fd.get(), meta_size));
  r.meta = std::move(meta_map);
  r.meta_fd = std::move(meta_fd);
  r.data = DataRegion(std::move(data_fd));
  return r;
}

void use_header(Regions& r) {
  r.header = reinterpret_cast<Header*>(r.meta.data());
  r.table = reinterpret_cast<InodeRec*>(r.meta.data() + r.header->table_offset);
}

void format_root(InodeRec& root, const StoreOptions& opts, Segment& segment) {
  new (&root) InodeRec{};
  root.mode = S_IFDIR | (opts.root_mode & 07777);
  root.uid = opts.root_uid;
  root.gid = opts.root_gid;
  root.nlink = 2;
  root.size = kEmptyDirSize;
  root.parent = kRootIno;
  touch_new(root, now());
  root.dir = make_in<Directory>(segment, alloc_in<DirEntryRec>(segment));
}

}  // namespace

std::uint64_t default_max_inodes(std::uint64_t size_bytes) {
  return std::max<std::uint64_t>(1024, pages_for(size_bytes));
}

std::uint64_t meta_region_size(std::uint64_t quota_pages, std::uint64_t max_inodes) {
  // Per inode: a directory entry with a name of up to 255 bytes and the index nodes, the
  // inode's own container objects; per quota page: a page-table slot (x2 for growth) and
  // a free-list slot; plus the quota again for xattrs and long symlink targets, which are
  // charged to the quota. Sparse: only what is used costs memory.
  std::uint64_t segment = (4ull << 20) + max_inodes * 1024 + quota_pages * 48 +
                          quota_pages * kPageSize * 2;
  return kPageSize + table_size(max_inodes) + round_up(segment, kPageSize);
}

Result<Regions> format_regions(const StoreOptions& opts, UniqueFd meta_fd, UniqueFd data_fd) {
  if (opts.size_bytes < kPageSize) return std::errc::invalid_argument;
  std::uint64_t quota_pages = pages_for(opts.size_bytes);
  if (quota_pages >= kUnwritten) return std::errc::file_too_large;
  std::uint64_t max_inodes = opts.max_inodes ? opts.max_inodes : default_max_inodes(opts.size_bytes);
  if (max_inodes >= (1ull << 31)) return std::errc::invalid_argument;
  std::uint64_t meta_size = meta_region_size(quota_pages, max_inodes);
  if (::ftruncate(meta_fd.get(), static_cast<off_t>(meta_size)) < 0) return last_errc();
  if (::ftruncate(data_fd.get(), static_cast<off_t>(quota_pages * kPageSize)) < 0)
    return last_errc();

  HC_TRY(r, map_regions(std::move(meta_fd), meta_size, std::move(data_fd)));
  auto* h = new (r.meta.data()) Header{};
  h->version = kLayoutVersion;
  h->inode_rec_size = sizeof(InodeRec);
  h->quota_pages = quota_pages;
  h->max_inodes = max_inodes;
  h->table_offset = kPageSize;
  h->segment_offset = kPageSize + table_size(max_inodes);
  h->segment_size = meta_size - h->segment_offset;
  use_header(r);
  try {
    r.segment = std::make_unique<Segment>(bip::create_only, r.meta.data() + h->segment_offset,
                                          h->segment_size);
    r.page_slots = r.segment->construct<SlotPool>(kPagePoolName)(
        quota_pages, alloc_in<std::uint32_t>(*r.segment));
    r.inode_slots = r.segment->construct<SlotPool>(kInodePoolName)(
        max_inodes, alloc_in<std::uint32_t>(*r.segment));
  } catch (const bip::interprocess_exception&) {
    return std::errc::not_enough_memory;
  }
  format_root(r.table[kRootIno], opts, *r.segment);
  h->inodes_used = 1;  // tmpfs counts its root
  // The magic goes last: a half-formatted region is never mistaken for a store.
  std::memcpy(h->magic, kMagic, sizeof h->magic);
  return r;
}

Result<Regions> attach_regions(UniqueFd meta_fd, UniqueFd data_fd) {
  HC_TRY(meta_size, fd_size(meta_fd.get()));
  if (meta_size < kPageSize) return std::errc::protocol_error;
  HC_TRY(data_size, fd_size(data_fd.get()));
  if (data_size == 0) return std::errc::protocol_error;
  HC_TRY(r, map_regions(std::move(meta_fd), meta_size, std::move(data_fd)));
  const Header* h = reinterpret_cast<const Header*>(r.meta.data());
  if (!is_store_header(*h) || h->inode_rec_size != sizeof(InodeRec) ||
      h->segment_offset + h->segment_size != meta_size || data_size != h->quota_pages * kPageSize)
    return std::errc::protocol_error;
  use_header(r);
  try {
    r.segment = std::make_unique<Segment>(bip::open_only, r.meta.data() + h->segment_offset,
                                          h->segment_size);
  } catch (const bip::interprocess_exception&) {
    return std::errc::protocol_error;
  }
  r.page_slots = r.segment->find<SlotPool>(kPagePoolName).first;
  r.inode_slots = r.segment->find<SlotPool>(kInodePoolName).first;
  if (!r.page_slots || !r.inode_slots) return std::errc::protocol_error;
  // The kernel that held lookups and handles is gone with the old daemon... unless the
  // FUSE connection survives; the caller decides. Counts are kept as they are.
  return r;
}

Result<Usage> peek_usage(int meta_fd) {
  HC_TRY(size, fd_size(meta_fd));
  if (size < kPageSize) return std::errc::protocol_error;
  HC_TRY(map, Mapping::map_shared(meta_fd, kPageSize));
  const auto* h = reinterpret_cast<const Header*>(map.data());
  if (!is_store_header(*h)) return std::errc::protocol_error;
  return Quota::usage_of(*h);
}

}  // namespace hostchanfs::shm
