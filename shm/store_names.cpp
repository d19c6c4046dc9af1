// Names and what they lead to: lookup and forget, links, unlink, rmdir, directory
// listings, and open handles.
#include <sys/stat.h>

#include <mutex>

#include "shm/store_impl.hpp"

namespace hostchanfs::shm {

namespace {

// The end of an unlink or rmdir, in the tx that removed the entry: the times, the
// outcome's record, and the inode's end when that was its last name and nothing holds it.
void end_removal(Store::Impl& s, Tx& tx, InodeRecord& parent, const Store::Impl::Named& named,
                 const Request& req, Mutation op, std::uint64_t generation) {
  timespec ts = now();
  touch_c(tx, *named.r, ts);
  touch_mc(tx, parent, ts);
  s.dedupe.record(tx, req, op);
  s.settle(tx, named.ino, *named.r);
  tx.commit();
  s.finish(named.ino, generation);
}

}  // namespace

Result<Attr> Store::lookup(Ino parent_ino, std::string_view name) {
  if (name.size() > kNameMax) return std::errc::filename_too_long;
  auto& s = *impl_;
  std::shared_lock lk(s.ns_mutex);
  HC_TRY(parent, s.dir_of(parent_ino));
  Ino ino = 0;
  if (name == ".") {
    ino = parent_ino;
  } else if (name == "..") {
    ino = parent->parent;
  } else {
    auto slot = s.dirs.find(parent_ino, name);
    if (!slot) return std::errc::no_such_file_or_directory;
    ino = s.dirs.entry(*slot).ino;
  }
  HC_TRY(r, s.inodes.get(ino));
  s.inodes.add_lookup(ino);
  return s.locked_attr(ino, *r);
}

void Store::forget(Ino ino, std::uint64_t nlookup) {
  // The root is never freed, and the kernel's count for it starts at one that no reply of
  // ours counted: a forget of the root must not trip the underflow check.
  if (ino == kRootIno) return;
  auto& s = *impl_;
  std::uint64_t generation = 0;
  {
    std::shared_lock lk(s.ns_mutex);
    if (!s.inodes.find(ino) || !s.inodes.forget(ino, nlookup)) return;
    generation = s.inodes.generation(ino);
  }
  s.free_if_unreferenced(ino, generation);
}

Result<Attr> Store::link(Ino ino, Ino new_parent, std::string_view new_name, const Request& req) {
  auto& s = *impl_;
  if (auto done = s.replayed(req, Mutation::kLink)) return s.entry_of(*done);
  HC_TRYV(check_name(new_name));
  std::unique_lock lk(s.ns_mutex);
  HC_TRY(r, s.inodes.get(ino));
  if (is_dir(*r)) return std::errc::operation_not_permitted;
  HC_TRY(parent, s.live_dir_of(new_parent));
  if (s.dirs.find(new_parent, new_name)) return std::errc::file_exists;
  // A file with no name left is gone for link, except an O_TMPFILE one never linked.
  const bool first_name = r->nlink == 0;
  if (first_name && !(r->flags & rec::kLinkable)) return std::errc::no_such_file_or_directory;
  Tx tx(*s.region);
  // tmpfs charges every hard link as an inode; a tmpfile's first name has its charge.
  if (!first_name && !s.quota.reserve_inode(tx)) return std::errc::no_space_on_device;
  HC_TRYV(s.add_entry(tx, new_parent, *parent, new_name, ino, r->mode));
  tx.set(r->nlink, r->nlink + 1);
  if (first_name) tx.set(r->flags, r->flags & ~std::uint32_t{rec::kLinkable});
  timespec ts = now();
  touch_c(tx, *r, ts);
  touch_mc(tx, *parent, ts);
  s.inodes.add_lookup(ino);  // before the commit, as make_node counts
  s.dedupe.record(tx, req, Mutation::kLink, ino, s.inodes.generation(ino));
  tx.commit();
  return s.inodes.attr_of(ino, *r);
}

Result<void> Store::unlink(Ino parent_ino, std::string_view name, const Request& req, Unlinked* unlinked) {
  auto& s = *impl_;
  if (s.replayed(req, Mutation::kUnlink)) return success();
  HC_TRYV(check_name(name));
  std::unique_lock lk(s.ns_mutex);
  HC_TRY(parent, s.dir_of(parent_ino));
  HC_TRY(named, s.named(parent_ino, name));
  InodeRecord& r = *named.r;
  if (is_dir(r)) return std::errc::is_a_directory;
  const std::uint64_t generation = s.inodes.generation(named.ino);
  if (unlinked) *unlinked = Unlinked{named.ino, generation, r.mode};
  Tx tx(*s.region);
  s.remove_entry(tx, *parent, named.slot);
  // An extra hard link gives its inode charge back now; the last one with the inode.
  if (r.nlink > 1) s.quota.unreserve_inode(tx);
  tx.set(r.nlink, r.nlink - 1);
  end_removal(s, tx, *parent, named, req, Mutation::kUnlink, generation);
  return success();
}

Result<void> Store::rmdir(Ino parent_ino, std::string_view name, const Request& req) {
  auto& s = *impl_;
  if (s.replayed(req, Mutation::kRmdir)) return success();
  HC_TRYV(check_name(name));
  if (name == ".") return std::errc::invalid_argument;
  if (name == "..") return std::errc::directory_not_empty;
  std::unique_lock lk(s.ns_mutex);
  HC_TRY(parent, s.dir_of(parent_ino));
  HC_TRY(named, s.named(parent_ino, name));
  InodeRecord& r = *named.r;
  if (!is_dir(r)) return std::errc::not_a_directory;
  if (!s.dirs.empty(named.ino)) return std::errc::directory_not_empty;
  const std::uint64_t generation = s.inodes.generation(named.ino);
  Tx tx(*s.region);
  s.remove_entry(tx, *parent, named.slot);
  tx.set(parent->nlink, parent->nlink - 1);
  tx.set(r.nlink, std::uint32_t{0});
  end_removal(s, tx, *parent, named, req, Mutation::kRmdir, generation);
  return success();
}

Result<void> Store::readdir(Ino dir_ino, std::uint64_t offset, bool plus, const DirEmitter& emit) {
  auto& s = *impl_;
  std::shared_lock lk(s.ns_mutex);
  HC_TRY(dir, s.dir_of(dir_ino));
  auto emit_one = [&](std::string_view name, Ino ino, std::uint64_t next, bool counted) {
    const InodeRecord* r = s.inodes.find(ino);
    if (!r) return true;  // cannot happen under ns lock; skip rather than lie
    Attr a = s.locked_attr(ino, *r);
    DirEntry e{name, ino, a.mode, next};
    if (!emit(e, plus ? &a : nullptr)) return false;
    if (plus && counted) s.inodes.add_lookup(ino);
    return true;
  };
  if (offset < 1 && !emit_one(".", dir_ino, 1, false)) return success();
  if (offset < 2 && !emit_one("..", dir->parent, 2, false)) return success();
  s.dirs.list_from(dir_ino, offset, [&](const DirentRecord& e) {
    return emit_one(name_of(e), e.ino, e.cookie + 1, true);
  });
  return success();
}

// --- handles ----------------------------------------------------------------------------

// The kernel holds a directory's inode while it is open, so no handle is counted.
Result<void> Store::opendir(Ino ino) {
  std::shared_lock lk(impl_->ns_mutex);
  HC_TRYV(impl_->dir_of(ino));
  return success();
}

// Handles are counted in the inode's record (a tx each, with the request's outcome), not
// in a volatile cell: the quota of an unlinked file goes back at its last release, so the
// count must be exact across a daemon's death and a resent OPEN or RELEASE.
Result<Attr> Store::open(Ino ino, const Request& req) {
  auto& s = *impl_;
  if (s.replayed(req, Mutation::kOpen)) return getattr(ino);  // the handle the dead daemon counted
  std::shared_lock lk(s.ns_mutex);
  HC_TRY(r, s.inodes.get(ino));
  std::unique_lock ilk(s.stripe(ino));
  Tx tx(*s.region);
  tx.set(r->opens, r->opens + 1);
  s.dedupe.record(tx, req, Mutation::kOpen, ino);
  tx.commit();
  return s.inodes.attr_of(ino, *r);
}

Result<std::uint32_t> Store::open_handles(Ino ino) const {
  std::shared_lock lk(impl_->ns_mutex);
  HC_TRY(r, impl_->inodes.get(ino));
  std::shared_lock ilk(impl_->stripe(ino));
  return r->opens;
}

void Store::release(Ino ino, const Request& req) {
  auto& s = *impl_;
  if (s.replayed(req, Mutation::kRelease)) return;
  std::uint64_t generation = 0;
  {
    std::shared_lock lk(s.ns_mutex);
    InodeRecord* r = s.inodes.find(ino);
    if (!r) return;
    std::unique_lock ilk(s.stripe(ino));
    if (r->opens == 0) return;  // no handle to close (a caller's bug); nothing to undo
    Tx tx(*s.region);
    tx.set(r->opens, r->opens - 1);
    s.dedupe.record(tx, req, Mutation::kRelease, ino);
    tx.commit();
    if (r->opens != 0 || r->nlink != 0) return;
    generation = s.inodes.generation(ino);
  }
  s.free_if_unreferenced(ino, generation);
}

}  // namespace hostchanfs::shm
