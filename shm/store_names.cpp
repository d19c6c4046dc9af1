// Names and what they lead to: lookup and forget, attributes, symlink targets, links,
// unlink, rmdir, rename, directory listings, and open handles.
#include <linux/fs.h>
#include <sys/stat.h>

#include <algorithm>
#include <mutex>

#include "shm/store_impl.hpp"
#include "sys/scope_guard.hpp"

namespace hostchanfs::shm {

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
    const DirEntryRec* e = parent->dir->find(name);
    if (!e) return std::errc::no_such_file_or_directory;
    ino = e->ino;
  }
  HC_TRY(r, s.inodes.get(ino));
  InodeTable::add_lookup(*r);
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
    InodeRec* r = s.inodes.find(ino);
    if (!r || !InodeTable::forget(ino, *r, nlookup)) return;
    generation = r->generation;
  }
  s.free_if_unreferenced(ino, generation);
}

Result<Attr> Store::getattr(Ino ino) {
  std::shared_lock lk(impl_->ns_mutex);
  HC_TRY(r, impl_->inodes.get(ino));
  return impl_->locked_attr(ino, *r);
}

Result<Attr> Store::setattr(Ino ino, const AttrChange& c, const Caller& /*caller*/) {
  auto& s = *impl_;
  std::shared_lock lk(s.ns_mutex);
  HC_TRY(r, s.inodes.get(ino));
  std::unique_lock ilk(s.stripe(ino));
  if (c.size) {
    if (is_dir(*r)) return std::errc::is_a_directory;
    if (!is_reg(*r)) return std::errc::invalid_argument;
    if (*c.size > kMaxFileSize) return std::errc::file_too_large;
  }
  timespec ts = now();
  if (c.size) {
    std::uint64_t old = r->size, nsize = *c.size;
    if (nsize <= old) {
      // tmpfs frees everything past the new end, even pages fallocated beyond the old
      // one (also when the size stays), and zeroes the tail of the last page so a later
      // grow reads zeros.
      s.inodes.drop_pages(*r, pages_for(nsize));
      if (nsize % kPageSize) s.data().zero(*r->pages, nsize / kPageSize, nsize % kPageSize, kPageSize);
    }
    r->size = nsize;
    touch_mc(*r, ts);
  }
  mode_t mode = r->mode;
  if (c.mode) mode = (mode & S_IFMT) | (*c.mode & 07777);
  if (c.uid || c.gid) {
    if (c.uid) r->uid = *c.uid;
    if (c.gid) r->gid = *c.gid;
    // chown of a non-directory drops setuid, and setgid when group-executable.
    if (!S_ISDIR(mode) && !c.mode) mode = without_suid_sgid(mode);
  }
  if (c.kill_suid_sgid && !c.mode) mode = without_suid_sgid(mode);
  store_mode(*r, mode);
  auto apply = [&](const TimeChange& t, std::int64_t& sec, std::uint32_t& ns) {
    if (t.kind == TimeChange::Kind::kNow) set_time(sec, ns, ts);
    if (t.kind == TimeChange::Kind::kSet) set_time(sec, ns, t.value);
  };
  apply(c.atime, r->atime_s, r->atime_ns);
  apply(c.mtime, r->mtime_s, r->mtime_ns);
  set_time(r->ctime_s, r->ctime_ns, c.ctime ? *c.ctime : ts);
  return s.inodes.attr_of(ino, *r);
}

Result<std::string> Store::readlink(Ino ino) {
  std::shared_lock lk(impl_->ns_mutex);
  HC_TRY(r, impl_->inodes.get(ino));
  if (!S_ISLNK(load_mode(*r))) return std::errc::invalid_argument;
  return std::string(view(*r->symlink));
}

Result<Attr> Store::link(Ino ino, Ino new_parent, std::string_view new_name) {
  HC_TRYV(check_name(new_name));
  auto& s = *impl_;
  std::unique_lock lk(s.ns_mutex);
  HC_TRY(r, s.inodes.get(ino));
  if (is_dir(*r)) return std::errc::operation_not_permitted;
  HC_TRY(parent, s.live_dir_of(new_parent));
  if (parent->dir->find(new_name)) return std::errc::file_exists;
  if (r->nlink == 0) return std::errc::no_such_file_or_directory;
  // tmpfs charges every hard link as an inode.
  if (!s.quota.reserve_inode()) return std::errc::no_space_on_device;
  try {
    Impl::add_entry(*parent, new_name, ino, r->mode);
  } catch (const bip::bad_alloc&) {
    s.quota.unreserve_inode();
    return std::errc::no_space_on_device;
  }
  ++r->nlink;
  timespec ts = now();
  touch_c(*r, ts);
  touch_mc(*parent, ts);
  InodeTable::add_lookup(*r);
  return s.inodes.attr_of(ino, *r);
}

Result<void> Store::unlink(Ino parent_ino, std::string_view name) {
  HC_TRYV(check_name(name));
  auto& s = *impl_;
  std::unique_lock lk(s.ns_mutex);
  HC_TRY(parent, s.dir_of(parent_ino));
  HC_TRY(named, s.named(*parent, name));
  auto [ino, r] = named;
  if (is_dir(*r)) return std::errc::is_a_directory;
  Impl::remove_entry(*parent, name);
  // An extra hard link gives its inode charge back now; the last one when freed.
  if (r->nlink > 1) s.quota.unreserve_inode();
  --r->nlink;
  timespec ts = now();
  touch_c(*r, ts);
  touch_mc(*parent, ts);
  s.inodes.settle(ino, *r);
  return success();
}

Result<void> Store::rmdir(Ino parent_ino, std::string_view name) {
  HC_TRYV(check_name(name));
  if (name == ".") return std::errc::invalid_argument;
  if (name == "..") return std::errc::directory_not_empty;
  auto& s = *impl_;
  std::unique_lock lk(s.ns_mutex);
  HC_TRY(parent, s.dir_of(parent_ino));
  HC_TRY(named, s.named(*parent, name));
  auto [ino, r] = named;
  if (!is_dir(*r)) return std::errc::not_a_directory;
  if (!r->dir->empty()) return std::errc::directory_not_empty;
  Impl::remove_entry(*parent, name);
  --parent->nlink;
  r->nlink = 0;
  timespec ts = now();
  touch_c(*r, ts);
  touch_mc(*parent, ts);
  s.inodes.settle(ino, *r);
  return success();
}

namespace {

// A directory `dir` moves from `from` to `to`: its ".." and both link counts follow.
void reparent(InodeRec& dir, Ino to_ino, InodeRec& from, InodeRec& to) {
  dir.parent = to_ino;
  --from.nlink;
  ++to.nlink;
}

}  // namespace

Result<void> Store::rename(Ino old_parent_ino, std::string_view old_name, Ino new_parent_ino,
                           std::string_view new_name, unsigned flags) {
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return std::errc::invalid_argument;
  if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE)) return std::errc::invalid_argument;
  HC_TRYV(check_name(old_name));
  HC_TRYV(check_name(new_name));
  auto& s = *impl_;
  std::unique_lock lk(s.ns_mutex);
  HC_TRY(old_parent, s.dir_of(old_parent_ino));
  HC_TRY(new_parent, s.live_dir_of(new_parent_ino));
  const DirEntryRec* src = old_parent->dir->find(old_name);
  if (!src) return std::errc::no_such_file_or_directory;
  const DirEntryRec* dst = new_parent->dir->find(new_name);
  Ino src_ino = src->ino;
  HC_TRY(sr, s.inodes.get(src_ino));
  Ino dst_ino = dst ? dst->ino : 0;
  InodeRec* dr = dst ? s.inodes.find(dst_ino) : nullptr;
  const bool moves = old_parent_ino != new_parent_ino;
  timespec ts = now();

  if (flags & RENAME_EXCHANGE) {
    if (!dst) return std::errc::no_such_file_or_directory;
    if (src_ino == dst_ino) return success();
    // Neither may end up inside itself.
    if (is_dir(*sr) && s.is_ancestor(src_ino, new_parent_ino)) return std::errc::invalid_argument;
    if (is_dir(*dr) && s.is_ancestor(dst_ino, old_parent_ino)) return std::errc::invalid_argument;
    // Swap the two entries' targets in place: names and cookies stay where they are.
    old_parent->dir->retarget(*src, dst_ino, dr->mode);
    new_parent->dir->retarget(*dst, src_ino, sr->mode);
    if (moves && is_dir(*sr)) reparent(*sr, new_parent_ino, *old_parent, *new_parent);
    if (moves && is_dir(*dr)) reparent(*dr, old_parent_ino, *new_parent, *old_parent);
    touch_c(*sr, ts);
    touch_c(*dr, ts);
    touch_mc(*old_parent, ts);
    touch_mc(*new_parent, ts);
    return success();
  }

  if (dst && (flags & RENAME_NOREPLACE)) return std::errc::file_exists;
  if (dst && src_ino == dst_ino) return success();  // two links to one file: POSIX no-op
  if (is_dir(*sr)) {
    if (s.is_ancestor(src_ino, new_parent_ino)) return std::errc::invalid_argument;
    if (dr && !is_dir(*dr)) return std::errc::not_a_directory;
    if (dr && !dr->dir->empty()) return std::errc::directory_not_empty;
  } else if (dr && is_dir(*dr)) {
    return std::errc::is_a_directory;
  }
  // Make the new entry before touching the old one, so running out of segment memory
  // leaves both names as they were.
  if (dst) {
    new_parent->dir->retarget(*dst, src_ino, sr->mode);
  } else {
    try {
      Impl::add_entry(*new_parent, new_name, src_ino, sr->mode);
    } catch (const bip::bad_alloc&) {
      return std::errc::no_space_on_device;
    }
  }
  Impl::remove_entry(*old_parent, old_name);
  if (moves && is_dir(*sr)) reparent(*sr, new_parent_ino, *old_parent, *new_parent);
  if (dr) {
    // The replaced inode loses its name.
    if (is_dir(*dr)) {
      dr->nlink = 0;
      --new_parent->nlink;
    } else {
      if (dr->nlink > 1) s.quota.unreserve_inode();
      --dr->nlink;
    }
    touch_c(*dr, ts);
    s.inodes.settle(dst_ino, *dr);
  }
  touch_c(*sr, ts);
  touch_mc(*old_parent, ts);
  touch_mc(*new_parent, ts);
  return success();
}

Result<void> Store::readdir(Ino dir_ino, std::uint64_t offset, bool plus, const DirEmitter& emit) {
  auto& s = *impl_;
  std::shared_lock lk(s.ns_mutex);
  HC_TRY(dir, s.dir_of(dir_ino));
  auto emit_one = [&](std::string_view name, Ino ino, std::uint64_t next, bool counted) {
    InodeRec* r = s.inodes.find(ino);
    if (!r) return true;  // cannot happen under ns lock; skip rather than lie
    Attr a = s.locked_attr(ino, *r);
    DirEntry e{name, ino, a.mode, next};
    if (!emit(e, plus ? &a : nullptr)) return false;
    if (plus && counted) InodeTable::add_lookup(*r);
    return true;
  };
  if (offset < 1 && !emit_one(".", dir_ino, 1, false)) return success();
  if (offset < 2 && !emit_one("..", dir->parent, 2, false)) return success();
  dir->dir->list_from(offset, [&](const DirEntryRec& e) {
    return emit_one(view(e.name), e.ino, e.cookie + 1, true);
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

Result<void> Store::open(Ino ino) {
  std::shared_lock lk(impl_->ns_mutex);
  HC_TRY(r, impl_->inodes.get(ino));
  InodeTable::open(*r);
  return success();
}

void Store::release(Ino ino) {
  auto& s = *impl_;
  // Counted from the start, before any lock: see Impl::releases_in_flight.
  s.releases_in_flight.fetch_add(1);
  ScopeGuard done([&] { s.releases_in_flight.fetch_sub(1); });
  std::uint64_t generation = 0;
  {
    std::shared_lock lk(s.ns_mutex);
    InodeRec* r = s.inodes.find(ino);
    if (!r || !InodeTable::close(*r)) return;
    generation = r->generation;
  }
  s.free_if_unreferenced(ino, generation);
}

}  // namespace hostchanfs::shm
