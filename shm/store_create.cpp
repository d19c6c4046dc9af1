// New inodes: mknod, mkdir, symlink, and create-and-open. Each makes the inode, its own
// objects in the segment and its entry in the parent, all or nothing.
#include <sys/stat.h>

#include <mutex>

#include "shm/store_impl.hpp"
#include "sys/scope_guard.hpp"

namespace hostchanfs::shm {

namespace {

// The objects a new inode of its type owns in the segment; bip::bad_alloc when full.
void make_contents(Segment& segment, InodeRec& r, Ino parent_ino, std::string_view symlink_target) {
  if (S_ISDIR(r.mode)) {
    r.dir = make_in<Directory>(segment, alloc_in<DirEntryRec>(segment));
    r.nlink = 2;
    r.size = kEmptyDirSize;
    r.parent = parent_ino;
  } else if (S_ISREG(r.mode)) {
    r.pages = make_in<PageTable>(segment, alloc_in<PageMapValue>(segment));
  } else if (S_ISLNK(r.mode)) {
    r.symlink = make_in<String>(segment, symlink_target.data(), symlink_target.size(),
                                alloc_in<char>(segment));
    r.size = symlink_target.size();
  }
}

}  // namespace

Result<Attr> Store::Impl::make_node(Ino parent_ino, std::string_view name, mode_t mode, dev_t rdev,
                                    std::string_view symlink_target, const Caller& caller,
                                    bool open) {
  HC_TRYV(check_name(name));
  std::unique_lock lk(ns_mutex);
  HC_TRY(parent, live_dir_of(parent_ino));
  if (parent->dir->find(name)) return std::errc::file_exists;
  // A long symlink's page is charged before the inode; once made, the inode carries it
  // (pages_held), and freeing the inode gives it back.
  bool long_link = S_ISLNK(mode) && is_long_symlink(symlink_target.size());
  if (long_link && !quota.reserve_pages(1, false)) return std::errc::no_space_on_device;
  ScopeGuard unreserve([&] {
    if (long_link) quota.unreserve_pages(1);
  });
  HC_TRY(made, inodes.allocate(mode, *parent, caller));
  auto [ino, r] = made;
  r->pages_held = long_link ? 1 : 0;
  unreserve.dismiss();
  r->rdev = rdev;
  ScopeGuard undo([&, ino = ino, r = r] {
    r->nlink = 0;
    inodes.free(ino, *r);
  });
  try {
    make_contents(segment(), *r, parent_ino, symlink_target);
    add_entry(*parent, name, ino, r->mode);
  } catch (const bip::bad_alloc&) {
    return std::errc::no_space_on_device;
  }
  undo.dismiss();
  if (S_ISDIR(r->mode)) ++parent->nlink;
  touch_mc(*parent, get_time(r->ctime_s, r->ctime_ns));
  r->lookups.store(1);
  if (open) r->opens.store(1);
  return inodes.attr_of(ino, *r);
}

Result<Attr> Store::mknod(Ino parent, std::string_view name, mode_t mode, dev_t rdev,
                          const Caller& caller) {
  switch (mode & S_IFMT) {
    case 0:
      mode |= S_IFREG;
      break;
    case S_IFREG:
    case S_IFIFO:
    case S_IFSOCK:
    case S_IFCHR:
    case S_IFBLK:
      break;
    default:
      return std::errc::invalid_argument;
  }
  if (!S_ISCHR(mode) && !S_ISBLK(mode)) rdev = 0;
  return impl_->make_node(parent, name, mode, rdev, {}, caller, false);
}

Result<Attr> Store::create_and_open(Ino parent, std::string_view name, mode_t mode,
                                    const Caller& caller) {
  return impl_->make_node(parent, name, S_IFREG | (mode & ~S_IFMT), 0, {}, caller, true);
}

Result<Attr> Store::mkdir(Ino parent, std::string_view name, mode_t mode, const Caller& caller) {
  return impl_->make_node(parent, name, S_IFDIR | (mode & 07777), 0, {}, caller, false);
}

Result<Attr> Store::symlink(Ino parent, std::string_view name, std::string_view target,
                            const Caller& caller) {
  if (target.empty()) return std::errc::no_such_file_or_directory;
  if (target.size() > kSymlinkMax) return std::errc::filename_too_long;
  return impl_->make_node(parent, name, S_IFLNK | 0777, 0, target, caller, false);
}

}  // namespace hostchanfs::shm
