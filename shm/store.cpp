// The store as a whole: making it, attaching to it, and what it accounts.
#include "shm/store.hpp"

#include <thread>

#include "shm/store_impl.hpp"
#include "sys/memfd.hpp"

namespace hostchanfs::shm {

struct stat Attr::to_stat() const noexcept {
  struct stat st {};
  st.st_ino = ino;
  st.st_mode = mode;
  st.st_nlink = nlink;
  st.st_uid = uid;
  st.st_gid = gid;
  st.st_rdev = rdev;
  st.st_size = static_cast<off_t>(size);
  st.st_blksize = kPageSize;
  st.st_blocks = static_cast<blkcnt_t>(blocks);
  st.st_atim = atime;
  st.st_mtim = mtime;
  st.st_ctim = ctime;
  return st;
}

bool Store::Impl::is_ancestor(Ino ancestor, Ino ino) const {
  while (true) {
    if (ino == ancestor) return true;
    if (ino == kRootIno) return false;
    const InodeRec* r = inodes.find(ino);
    if (!r) return false;
    ino = r->parent;
  }
}

std::uint64_t Store::default_max_inodes(std::uint64_t size_bytes) {
  return shm::default_max_inodes(size_bytes);
}

std::uint64_t Store::meta_region_size(std::uint64_t quota_pages, std::uint64_t max_inodes) {
  return shm::meta_region_size(quota_pages, max_inodes);
}

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::create(const StoreOptions& opts) {
  HC_TRY(meta, make_memfd("hostchanfs-meta", 0));
  HC_TRY(data, make_memfd("hostchanfs-data", 0));
  return create_in(opts, std::move(meta), std::move(data));
}

Result<std::unique_ptr<Store>> Store::create_in(const StoreOptions& opts, UniqueFd meta_fd,
                                                UniqueFd data_fd) {
  HC_TRY(regions, format_regions(opts, std::move(meta_fd), std::move(data_fd)));
  return std::unique_ptr<Store>(new Store(std::make_unique<Impl>(std::move(regions))));
}

Result<std::unique_ptr<Store>> Store::attach(UniqueFd meta_fd, UniqueFd data_fd) {
  HC_TRY(regions, attach_regions(std::move(meta_fd), std::move(data_fd)));
  return std::unique_ptr<Store>(new Store(std::make_unique<Impl>(std::move(regions))));
}

StatFs Store::statfs() const {
  // See Impl::releases_in_flight; a release is a few atomic operations and at most one
  // inode's pages to punch.
  while (impl_->releases_in_flight.load() > 0) std::this_thread::yield();
  Usage u = impl_->quota.usage();
  StatFs f;
  f.blocks = u.quota_pages;
  f.blocks_free = u.quota_pages - u.pages_used;
  f.files = u.max_inodes;
  f.files_free = u.max_inodes - u.inodes_used;
  return f;
}

std::uint64_t Store::pages_used() const { return impl_->quota.pages_used(); }
std::uint64_t Store::inodes_used() const { return impl_->quota.inodes_used(); }
std::uint64_t Store::quota_pages() const { return impl_->quota.quota_pages(); }
std::uint64_t Store::max_inodes() const { return impl_->quota.max_inodes(); }
int Store::meta_fd() const noexcept { return impl_->regions.meta_fd.get(); }
int Store::data_fd() const noexcept { return impl_->regions.data.fd(); }

}  // namespace hostchanfs::shm
