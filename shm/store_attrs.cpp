// Attributes: getattr, setattr (with truncation, and a chmod's access ACL), readlink.
#include <sys/stat.h>
#include <unistd.h>

#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "shm/store_impl.hpp"

namespace hostchanfs::shm {

Result<Attr> Store::getattr(Ino ino) {
  std::shared_lock lk(impl_->ns_mutex);
  HC_TRY(r, impl_->inodes.get(ino));
  return impl_->locked_attr(ino, *r);
}

namespace {

// A truncation to `nsize`: tmpfs frees everything past the new end, even pages fallocated
// beyond the old one (also when the size stays), and zeroes the tail of the last page so a
// later grow reads zeros. What the page map says, looked up before the tx (the page-map
// lock comes before the tx mutex); the pages go as the inode's work, after commit.
struct Truncation {
  std::optional<std::uint32_t> tail;  // the written page holding the new end
  bool beyond = false;                // pages at or past the new end
};
Truncation plan_truncate(const Store::Impl& s, Ino ino, const InodeRecord& r, std::uint64_t nsize) {
  Truncation t;
  if (nsize > r.size) return t;
  std::shared_lock pm(s.page_map_lock);
  if (nsize % kPageSize) {
    auto v = s.pages.find(ino, rec::kFileFork, nsize / kPageSize);
    if (v && is_written(*v)) t.tail = page_number(*v);
  }
  t.beyond = s.pages.any_from(ino, rec::kFileFork, pages_for(nsize));
  return t;
}
Result<void> truncate_in(const Store::Impl& s, Tx& tx, InodeRecord& r, std::uint64_t nsize, const Truncation& t) {
  if (t.tail && !s.data.zero(tx, *t.tail, nsize % kPageSize, kPageSize)) return last_errc();
  if (t.beyond) {
    tx.set(r.work_from, pages_for(nsize));
    tx.set(r.work_to, rec::kNoWork);
  }
  tx.set(r.size, nsize);
  return success();
}

}  // namespace

Result<Attr> Store::setattr(Ino ino, const AttrChange& c, const Caller& /*caller*/, const Request& req) {
  auto& s = *impl_;
  if (s.replayed(req, Mutation::kSetattr)) return getattr(ino);
  std::shared_lock lk(s.ns_mutex);
  HC_TRY(r, s.inodes.get(ino));
  std::unique_lock ilk(s.stripe(ino));
  if (c.size) {
    if (is_dir(*r)) return std::errc::is_a_directory;
    if (!is_reg(*r)) return std::errc::invalid_argument;
    if (*c.size > kMaxFileSize) return std::errc::file_too_large;
  }
  timespec ts = now();
  const Truncation truncation = c.size ? plan_truncate(s, ino, *r, *c.size) : Truncation{};
  mode_t mode = r->mode;
  if (c.mode) mode = (mode & S_IFMT) | (*c.mode & 07777);
  // chown of a non-directory drops setuid, and setgid when group-executable.
  if ((c.uid || c.gid) && !S_ISDIR(mode) && !c.mode) mode = without_suid_sgid(mode);
  if (c.kill_suid_sgid && !c.mode) mode = without_suid_sgid(mode);
  // A chmod carries an access ACL along (posix_acl_chmod), in the same tx.
  thread_local std::vector<std::byte> acl_value;
  std::optional<std::size_t> acl_at;
  std::unique_lock<std::shared_mutex> pm;
  if (c.mode) {
    HC_TRY(at, s.plan_acl_chmod(ino, *r, mode, acl_value));
    acl_at = at;
    if (acl_at) pm = std::unique_lock(s.page_map_lock);
  }
  Tx tx(*s.region);
  if (c.size) {
    HC_TRYV(truncate_in(s, tx, *r, *c.size, truncation));
    touch_mc(tx, *r, ts);
  }
  if (c.uid) tx.set(r->uid, static_cast<std::uint32_t>(*c.uid));
  if (c.gid) tx.set(r->gid, static_cast<std::uint32_t>(*c.gid));
  if (mode != r->mode) tx.set_relaxed(r->mode, static_cast<std::uint32_t>(mode));
  if (acl_at) {
    HC_TRYV(s.rewrite_xattrs(tx, ino, *r, *acl_at, acl_value, r->xattr_len));
  }
  auto apply = [&](const TimeChange& t, std::int64_t& sec, std::uint32_t& ns) {
    if (t.kind == TimeChange::Kind::kNow) set_time(tx, sec, ns, ts);
    if (t.kind == TimeChange::Kind::kSet) set_time(tx, sec, ns, t.value);
  };
  apply(c.atime, r->atime_s, r->atime_ns);
  apply(c.mtime, r->mtime_s, r->mtime_ns);
  set_time(tx, r->ctime_s, r->ctime_ns, c.ctime ? *c.ctime : ts);
  s.dedupe.record(tx, req, Mutation::kSetattr, ino);
  tx.commit();
  if (pm.owns_lock()) pm.unlock();  // run_work_shared takes it for each of its txs
  s.run_work_shared(ino, *r);
  return s.inodes.attr_of(ino, *r);
}

// Looked at under the stripe shared first: a read that finds atime fresh (nearly every
// one) costs no tx and no exclusive lock.
Result<bool> Store::accessed(Ino ino, const Request& req) {
  auto& s = *impl_;
  if (s.replayed(req, Mutation::kAccessed)) return true;
  std::shared_lock lk(s.ns_mutex);
  HC_TRY(r, s.inodes.get(ino));
  const timespec ts = now();
  {
    std::shared_lock ilk(s.stripe(ino));
    if (!relatime_due(*r, ts)) return false;
  }
  std::unique_lock ilk(s.stripe(ino));
  if (!relatime_due(*r, ts)) return false;  // another reader was first
  Tx tx(*s.region);
  set_time(tx, r->atime_s, r->atime_ns, ts);
  s.dedupe.record(tx, req, Mutation::kAccessed, ino);
  tx.commit();
  return true;
}

Result<std::string> Store::readlink(Ino ino) {
  auto& s = *impl_;
  std::shared_lock lk(s.ns_mutex);
  HC_TRY(r, s.inodes.get(ino));
  if (!S_ISLNK(load_mode(*r))) return std::errc::invalid_argument;
  if (!is_long_symlink(r->size)) return std::string(r->inline_target, r->size);
  std::optional<std::uint32_t> page;
  {
    std::shared_lock pm(s.page_map_lock);
    page = s.pages.find(ino, rec::kSymlinkFork, 0);
  }
  // A long symlink's page goes with its charge, when its last name goes; only the kernel's
  // lookups keep the inode then, and it has no name to resolve.
  if (!page) return std::errc::no_such_file_or_directory;
  std::string target(r->size, '\0');
  const off_t at = static_cast<off_t>(std::uint64_t{page_number(*page)} * kPageSize);
  if (::pread(s.data_fd.get(), target.data(), target.size(), at) != static_cast<ssize_t>(target.size()))
    return errno ? last_errc() : std::errc::io_error;
  return target;
}

}  // namespace hostchanfs::shm
