// New inodes: mknod, mkdir, symlink, and create-and-open. Each makes the inode, its entry
// in the parent, (a long symlink) its target's page and (under a default ACL) the ACLs it
// inherits in one tx, with the request's outcome: all or nothing, and exactly once.
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <vector>

#include "shm/store_impl.hpp"

namespace hostchanfs::shm {

InodeRecord new_record(mode_t mode, dev_t rdev, const InodeRecord& parent, Ino parent_ino,
                       std::string_view symlink_target, const Caller& caller, bool open) {
  InodeRecord r{};
  set_new_owner(r, mode, parent, caller);
  r.nlink = 1;
  r.rdev = rdev;
  r.opens = open ? 1 : 0;
  r.work_from = rec::kNoWork;
  stamp_new(r, now());
  if (S_ISDIR(r.mode)) {
    r.nlink = 2;
    r.size = kEmptyDirSize;
    r.parent = parent_ino;
    r.next_cookie = kFirstCookie;
  } else if (S_ISLNK(r.mode)) {
    r.size = symlink_target.size();
    if (is_long_symlink(symlink_target.size())) {
      r.pages_held = 1;
    } else {
      std::memcpy(r.inline_target, symlink_target.data(), symlink_target.size());
    }
  }
  return r;
}

namespace {

// A long symlink's target in a page of its own (fork 2), charged as tmpfs charges it.
Result<void> store_target(Store::Impl& s, Tx& tx, Ino ino, std::string_view target) {
  auto page = s.data_pool.alloc(tx);
  if (!page) persist::fatal("symlink: the data pool is empty though the quota had room");
  // The page is fresh in this tx: a rollback punches it, so no undo is needed.
  const off_t at = static_cast<off_t>(std::uint64_t{*page} * kPageSize);
  if (::pwrite(s.data_fd.get(), target.data(), target.size(), at) != static_cast<ssize_t>(target.size()))
    return errno ? last_errc() : std::errc::io_error;
  return s.pages.insert(tx, ino, rec::kSymlinkFork, 0, *page);
}

}  // namespace

Result<Attr> Store::Impl::make_node(Ino parent_ino, std::string_view name, mode_t mode, dev_t rdev,
                                    std::string_view symlink_target, const Caller& caller, bool open,
                                    const Request& req, Mutation op, bool unnamed) {
  if (auto done = replayed(req, op)) return entry_of(*done);
  if (!unnamed) {
    HC_TRYV(check_name(name));
  }
  std::unique_lock lk(ns_mutex);
  HC_TRY(parent, live_dir_of(parent_ino));
  if (!unnamed && dirs.find(parent_ino, name)) return std::errc::file_exists;
  // The parent's default ACL, or else the umask, as tmpfs applies them (symlinks: 0777).
  thread_local std::vector<std::byte> inherited;
  std::uint64_t inherited_charge = 0;
  if (!S_ISLNK(mode)) {
    HC_TRY(charge, inherit_acls(parent_ino, *parent, mode, caller.umask, inherited));
    inherited_charge = charge;
  } else {
    inherited.clear();
  }
  InodeRecord init = new_record(mode, rdev, *parent, parent_ino, symlink_target, caller, open);
  if (unnamed) {
    init.nlink = 0;
    init.flags |= rec::kLinkable;
  }
  const bool long_link = S_ISLNK(mode) && is_long_symlink(symlink_target.size());
  Tx tx(*region);
  if (long_link && !quota.reserve_pages(tx, 1, false)) return std::errc::no_space_on_device;
  HC_TRY(made, inodes.allocate(tx, quota, init));
  auto [ino, r] = made;
  if (long_link) {
    HC_TRYV(store_target(*this, tx, ino, symlink_target));
  }
  HC_TRYV(add_inherited(tx, ino, *r, inherited, inherited_charge));
  if (!unnamed) {
    HC_TRYV(add_entry(tx, parent_ino, *parent, name, ino, mode));
    if (S_ISDIR(mode)) tx.set(parent->nlink, parent->nlink + 1);
    touch_mc(tx, *parent, get_time(r->ctime_s, r->ctime_ns));
  }
  // Counted before the commit: a resend finds its record only if this count was made.
  inodes.set_lookups(ino, 1);
  dedupe.record(tx, req, op, ino, inodes.generation(ino));
  tx.commit();
  return inodes.attr_of(ino, *r);
}

Result<Attr> Store::mknod(Ino parent, std::string_view name, mode_t mode, dev_t rdev, const Caller& caller,
                          const Request& req) {
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
  return impl_->make_node(parent, name, mode, rdev, {}, caller, false, req, Mutation::kMknod);
}

Result<Attr> Store::create_and_open(Ino parent, std::string_view name, mode_t mode, const Caller& caller,
                                    const Request& req) {
  return impl_->make_node(parent, name, S_IFREG | (mode & ~S_IFMT), 0, {}, caller, true, req, Mutation::kCreate);
}

// tmpfs's O_TMPFILE leaves the directory as it was: no entry, no new time.
Result<Attr> Store::create_unnamed(Ino dir, mode_t mode, const Caller& caller, const Request& req) {
  return impl_->make_node(dir, {}, S_IFREG | (mode & ~S_IFMT), 0, {}, caller, true, req, Mutation::kTmpfile, true);
}

Result<Attr> Store::mkdir(Ino parent, std::string_view name, mode_t mode, const Caller& caller, const Request& req) {
  return impl_->make_node(parent, name, S_IFDIR | (mode & 07777), 0, {}, caller, false, req, Mutation::kMkdir);
}

Result<Attr> Store::symlink(Ino parent, std::string_view name, std::string_view target, const Caller& caller,
                            const Request& req) {
  if (target.empty()) return std::errc::no_such_file_or_directory;
  if (target.size() > kSymlinkMax) return std::errc::filename_too_long;
  return impl_->make_node(parent, name, S_IFLNK | 0777, 0, target, caller, false, req, Mutation::kSymlink);
}

}  // namespace hostchanfs::shm
