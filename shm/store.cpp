// The store as a whole: making it, attaching to it, what it accounts, and the steps the
// operations share (Store::Impl's helpers).
#include "shm/store.hpp"


#include "shm/layout.hpp"
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

// --- Store::Impl ---------------------------------------------------------------------

Store::Impl::Impl(UniqueFd data_memfd, std::unique_ptr<persist::Region> meta_region)
    : data_fd(std::move(data_memfd)), region(std::move(meta_region)), sb(region->user_as<rec::Superblock>()),
      quota(sb), inodes(*region), dirs(*region), pages(*region), data_pool(*region, rec::kDataPool),
      data(data_fd.get()), intents(sb), dedupe(sb) {}

std::optional<Outcome> Store::Impl::replayed(const Request& req, Mutation op) {
  if (!req.resent()) return std::nullopt;
  Tx tx(*region);  // the ring changes in txs: read it under the tx mutex
  auto found = dedupe.find(tx, req, op);
  tx.commit();
  return found;
}

Result<Attr> Store::Impl::entry_of(const Outcome& o) const {
  std::shared_lock lk(ns_mutex);
  const InodeRecord* r = inodes.find(o.ino, o.generation);
  if (!r) return std::errc::no_such_file_or_directory;
  return locked_attr(o.ino, *r);
}

Result<Store::Impl::Named> Store::Impl::named(Ino dir, std::string_view name) const {
  auto slot = dirs.find(dir, name);
  if (!slot) return std::errc::no_such_file_or_directory;
  const Ino ino = dirs.entry(*slot).ino;
  HC_TRY(r, inodes.get(ino));
  return Named{*slot, ino, r};
}

Result<void> Store::Impl::add_entry(Tx& tx, Ino dir, InodeRecord& d, std::string_view name, Ino ino, mode_t mode) {
  HC_TRYV(dirs.add(tx, dir, d, name, ino, mode));
  tx.set(d.size, d.size + kBogoDirentSize);
  return success();
}

void Store::Impl::remove_entry(Tx& tx, InodeRecord& d, std::uint32_t slot) {
  dirs.remove(tx, slot);
  tx.set(d.size, d.size - kBogoDirentSize);
}

bool Store::Impl::is_ancestor(Ino ancestor, Ino ino) const {
  while (true) {
    if (ino == ancestor) return true;
    if (ino == kRootIno) return false;
    const InodeRecord* r = inodes.find(ino);
    if (!r) return false;
    ino = r->parent;
  }
}

// --- making and attaching --------------------------------------------------------------

namespace {

std::unique_ptr<Store::Impl> wrap(Regions r) {
  return std::make_unique<Store::Impl>(std::move(r.data), std::move(r.meta));
}

}  // namespace

std::uint64_t Store::default_max_inodes(std::uint64_t size_bytes) { return shm::default_max_inodes(size_bytes); }

std::uint64_t Store::meta_region_size(std::uint64_t quota_pages, std::uint64_t max_inodes) {
  return shm::meta_region_size(quota_pages, max_inodes);
}

std::uint64_t Store::max_inodes_allowed(std::uint64_t size_bytes) {
  return persist::store::inodes_allowed(pages_for(size_bytes));
}

std::optional<std::string> Store::refuse_options(const StoreOptions& opts) {
  if (opts.size_bytes < kPageSize) return "the size is below one 4 KiB page: give at least 4k";
  const std::uint64_t allowed = max_inodes_allowed(opts.size_bytes);
  const std::uint64_t inodes = inode_limit(opts);
  if (inodes > allowed) {
    const std::uint64_t quota_pages = pages_for(opts.size_bytes);
    return "an inode limit of " + std::to_string(inodes) + " needs " +
           std::to_string(meta_region_size(quota_pages, inodes) >> 20) + " MiB of metadata for a " +
           std::to_string(opts.size_bytes >> 20) + " MiB channel, above its bound (20% of the size + 16 MiB = " +
           std::to_string(persist::store::meta_limit(quota_pages) >> 20) + " MiB): give at most " +
           std::to_string(allowed) + " inodes, or a larger size";
  }
  return std::nullopt;
}

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::create(const StoreOptions& opts) {
  HC_TRY(meta, make_memfd("hostchanfs-meta", 0));
  HC_TRY(data, make_memfd("hostchanfs-data", 0));
  return create_in(opts, std::move(meta), std::move(data));
}

Result<std::unique_ptr<Store>> Store::create_in(const StoreOptions& opts, UniqueFd meta_fd, UniqueFd data_fd) {
  auto regions = format_regions(opts, std::move(meta_fd), std::move(data_fd));
  if (!regions) return regions.error().code;
  return std::unique_ptr<Store>(new Store(wrap(std::move(regions).value())));
}

Result<std::unique_ptr<Store>> Store::attach(UniqueFd meta_fd, UniqueFd data_fd, std::string* why) {
  auto regions = attach_regions(std::move(meta_fd), std::move(data_fd));
  if (!regions) {
    if (why) *why = regions.error().what;
    return regions.error().code;
  }
  auto impl = wrap(std::move(regions).value());
  impl->recover();
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

StatFs Store::statfs() const {
  Usage u = impl_->quota.usage(*impl_->region);
  StatFs f;
  f.blocks = u.quota_pages;
  f.blocks_free = u.quota_pages - u.pages_used;
  f.files = u.max_inodes;
  f.files_free = u.max_inodes - u.inodes_used;
  return f;
}

std::uint64_t Store::pages_used() const { return impl_->quota.usage(*impl_->region).pages_used; }
std::uint64_t Store::inodes_used() const { return impl_->quota.usage(*impl_->region).inodes_used; }
std::uint64_t Store::quota_pages() const { return impl_->quota.quota_pages(); }
std::uint64_t Store::max_inodes() const { return impl_->quota.max_inodes(); }
int Store::meta_fd() const noexcept { return impl_->region->fd(); }
int Store::data_fd() const noexcept { return impl_->data_fd.get(); }

std::optional<std::string> Store::verify() const {
  std::unique_lock lk(impl_->ns_mutex);  // no operation in flight
  auto checked = impl_->region->check(persist::CheckLevel::kDeep);
  if (!checked) return checked.error().what;
  return std::nullopt;
}

}  // namespace hostchanfs::shm
