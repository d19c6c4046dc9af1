#include "shm/layout.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "shm/inode_table.hpp"
#include "shm/persist/slot_table.hpp"
#include "shm/persist/store_schema.hpp"
#include "shm/persist/tx.hpp"
#include "shm/quota.hpp"
#include "shm/store_check.hpp"
#include "shm/tmpfs_rules.hpp"
#include "sys/errno_text.hpp"
#include "sys/mapping.hpp"
#include "sys/memfd.hpp"

namespace hostchanfs::shm {

namespace rec = persist::store;

namespace {

LayoutError not_a_store(std::string what) { return {std::errc::protocol_error, std::move(what)}; }
LayoutError from(const persist::Fault& f) { return {f.code, f.what}; }

// The largest quota: page numbers and their kUnwritten bit share 32 bits, and the
// superblock counts in 64.
constexpr std::uint64_t kMaxQuotaPages = std::uint64_t{1} << 30;

void format_root(persist::Tx& tx, const StoreOptions& opts, InodeTable& inodes, Quota& quota) {
  InodeRecord root{};
  root.mode = S_IFDIR | (opts.root_mode & 07777);
  root.uid = opts.root_uid;
  root.gid = opts.root_gid;
  root.nlink = 2;
  root.size = kEmptyDirSize;
  root.parent = kRootIno;
  root.next_cookie = 3;
  root.work_from = rec::kNoWork;
  stamp_new(root, now());
  auto made = inodes.allocate(tx, quota, root);  // tmpfs counts its root
  if (!made || made.value().first != kRootIno) persist::fatal("formatting a store: the root is not slot 0");
}

}  // namespace

std::uint64_t default_max_inodes(std::uint64_t size_bytes) {
  return rec::default_max_inodes(pages_for(size_bytes));
}

std::uint64_t inode_limit(const StoreOptions& opts) {
  return opts.max_inodes ? opts.max_inodes : default_max_inodes(opts.size_bytes);
}

std::uint64_t meta_region_size(std::uint64_t quota_pages, std::uint64_t max_inodes) {
  return rec::meta_bytes(quota_pages, max_inodes);
}

persist::Schema store_schema(std::uint64_t quota_pages, std::uint64_t max_inodes) {
  persist::Schema s = rec::schema(quota_pages, max_inodes);
  s.check = check_store;
  return s;
}

Laid<Regions> format_regions(const StoreOptions& opts, UniqueFd meta_fd, UniqueFd data_fd) {
  if (opts.size_bytes < kPageSize) return LayoutError{std::errc::invalid_argument, "the size is below one 4 KiB page"};
  const std::uint64_t quota_pages = pages_for(opts.size_bytes);
  if (quota_pages >= kMaxQuotaPages) return LayoutError{std::errc::file_too_large, "the size is above 4 TiB"};
  const std::uint64_t max_inodes = inode_limit(opts);
  if (max_inodes >= (std::uint64_t{1} << 31) || max_inodes > rec::inodes_allowed(quota_pages))
    return LayoutError{std::errc::invalid_argument, "the inode limit is above what the metadata bound allows"};
  if (::ftruncate(data_fd.get(), static_cast<off_t>(quota_pages * kPageSize)) < 0)
    return LayoutError{last_errc(), "sizing the data memfd: " + errno_text(errno)};
  auto region = persist::Region::create(std::move(meta_fd), {data_fd.get()}, store_schema(quota_pages, max_inodes));
  if (!region) return from(region.error());
  Regions r{std::move(data_fd), std::move(region.value())};
  auto& sb = r.meta->user_as<rec::Superblock>();
  Quota quota(sb);
  InodeTable inodes(*r.meta);
  persist::Tx tx(*r.meta);
  tx.set(sb.quota_pages, quota_pages);
  tx.set(sb.max_inodes, max_inodes);
  tx.set(sb.chunk_pages, opts.chunk_pages ? opts.chunk_pages : rec::kDefaultChunkPages);
  format_root(tx, opts, inodes, quota);
  tx.commit();
  return r;
}

Laid<Regions> attach_regions(UniqueFd meta_fd, UniqueFd data_fd) {
  auto data_size = fd_size(data_fd.get());
  if (!data_size) return LayoutError{data_size.error(), "the data memfd's size: " + errno_text(data_size.error())};
  // The capacities come from the region itself; the schema gives names, sizes and checks.
  auto region = persist::Region::attach(std::move(meta_fd), {data_fd.get()}, store_schema(1, 1));
  if (!region) return from(region.error());
  const auto& sb = region.value()->user_as<rec::Superblock>();
  if (data_size.value() != sb.quota_pages * kPageSize)
    return not_a_store("the data memfd is " + std::to_string(data_size.value()) + " bytes, the store's quota is " +
                       std::to_string(sb.quota_pages * kPageSize));
  return Regions{std::move(data_fd), std::move(region.value())};
}

Result<Usage> peek_usage(int meta_fd) {
  HC_TRY(size, fd_size(meta_fd));
  if (size < kPageSize) return std::errc::protocol_error;
  HC_TRY(head, Mapping::map_shared(meta_fd, kPageSize));
  const auto& h = *reinterpret_cast<const persist::RegionHeader*>(head.data());
  if (std::memcmp(h.magic, persist::kRegionMagic, sizeof h.magic) != 0 || h.version != persist::kFormatVersion ||
      h.user_version != rec::kLayoutVersion || h.user_offset % kPageSize ||
      h.user_offset + sizeof(rec::Superblock) > size)
    return std::errc::protocol_error;
  // The counters lie in the superblock's first page.
  HC_TRY(map, Mapping::map_shared(meta_fd, h.user_offset + kPageSize));
  return Quota::usage_of(*reinterpret_cast<const rec::Superblock*>(map.data() + h.user_offset));
}

}  // namespace hostchanfs::shm
