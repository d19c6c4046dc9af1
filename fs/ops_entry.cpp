// Names and attributes: lookup, forget, getattr, setattr, readlink, mknod, mkdir,
// symlink, link, unlink, rmdir, rename.
#include "fs/ops.hpp"
#include "fs/passthrough.hpp"
#include "fs/reply.hpp"
#include "shm/tmpfs_rules.hpp"

namespace hostchanfs::fs::ops {

namespace {

// Reply with the entry a name-creating store call returned, or its error.
void reply_created(fuse_req_t req, const Result<shm::Attr>& r, const char* op, fuse_ino_t parent) {
  if (!r) return reply_error(req, r.error(), op, parent);
  reply_entry(req, r.value());
}

void reply_done(fuse_req_t req, const Result<void>& r, const char* op, fuse_ino_t ino) {
  if (!r) return reply_error(req, r.error(), op, ino);
  reply_ok(req);
}

// --charge writer, after an unlink or a rename: the backing file of the inode that lost a
// name goes if it has no link left, and the store's pages it gave back leave the backing
// tmpfs. (The store names that inode itself: no lookup of it first.)
void after_unlink(Filesystem& fs, const shm::Store::Unlinked& unlinked) {
  if (!fs.passthrough) return;
  if (unlinked.ino != 0) fs.passthrough->unlinked(unlinked);
  else fs.passthrough->settle_store_pages();
}

void forgotten(Filesystem& fs, fuse_ino_t ino) {
  if (fs.passthrough) fs.passthrough->forgotten(ino);
}

shm::TimeChange time_change(int to_set, int set_bit, int now_bit, const timespec& value) {
  if (to_set & now_bit) return {shm::TimeChange::Kind::kNow, {}};
  if (to_set & set_bit) return {shm::TimeChange::Kind::kSet, value};
  return {};
}

}  // namespace

void lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  auto r = filesystem_of(req).store.lookup(parent, name);
  if (!r && r.error() == std::errc::no_such_file_or_directory) return reply_negative_entry(req);
  reply_created(req, r, "lookup", parent);
}

void forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  Filesystem& fs = filesystem_of(req);
  fs.store.forget(ino, nlookup);
  forgotten(fs, ino);
  fuse_reply_none(req);
}

void forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  Filesystem& fs = filesystem_of(req);
  for (size_t i = 0; i < count; ++i) {
    fs.store.forget(forgets[i].ino, forgets[i].nlookup);
    forgotten(fs, forgets[i].ino);
  }
  fuse_reply_none(req);
}

void getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* /*fi*/) {
  auto r = filesystem_of(req).store.getattr(ino);
  if (!r) return reply_error(req, r.error(), "getattr", ino);
  reply_attr(req, r.value());
}

void setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* /*fi*/) {
  shm::AttrChange change;
  if (to_set & FUSE_SET_ATTR_MODE) change.mode = attr->st_mode & 07777;
  if (to_set & FUSE_SET_ATTR_UID) change.uid = attr->st_uid;
  if (to_set & FUSE_SET_ATTR_GID) change.gid = attr->st_gid;
  if (to_set & FUSE_SET_ATTR_SIZE) change.size = static_cast<std::uint64_t>(attr->st_size);
  change.atime = time_change(to_set, FUSE_SET_ATTR_ATIME, FUSE_SET_ATTR_ATIME_NOW, attr->st_atim);
  change.mtime = time_change(to_set, FUSE_SET_ATTR_MTIME, FUSE_SET_ATTR_MTIME_NOW, attr->st_mtim);
  if (to_set & FUSE_SET_ATTR_CTIME) change.ctime = attr->st_ctim;
  change.kill_suid_sgid =
      (to_set & (FUSE_SET_ATTR_KILL_SUID | FUSE_SET_ATTR_KILL_SGID | FUSE_SET_ATTR_KILL_PRIV)) != 0;
  Filesystem& fs = filesystem_of(req);
  if (fs.passthrough) {  // the backing file first: its size and times are the file's
    auto before = fs.store.getattr(ino);
    auto applied = before ? fs.passthrough->apply(before.value(), change) : Result<void>(before.error());
    if (!applied) return reply_error(req, applied.error(), "setattr", ino);
  }
  auto r = fs.store.setattr(ino, change, caller_of(req), request_of(req));
  if (!r) return reply_error(req, r.error(), "setattr", ino);
  reply_attr(req, r.value());
}

void readlink(fuse_req_t req, fuse_ino_t ino) {
  auto r = filesystem_of(req).store.readlink(ino);
  if (!r) return reply_error(req, r.error(), "readlink", ino);
  fuse_reply_readlink(req, r.value().c_str());
}

void mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  Filesystem& fs = filesystem_of(req);
  auto r = fs.store.mknod(parent, name, mode, rdev, caller_of(req), request_of(req));
  if (r && fs.passthrough) fs.passthrough->settle_store_pages();  // inherited ACLs (passthrough.hpp)
  reply_created(req, r, "mknod", parent);
}

void mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  Filesystem& fs = filesystem_of(req);
  auto r = fs.store.mkdir(parent, name, mode, caller_of(req), request_of(req));
  if (r && fs.passthrough) fs.passthrough->settle_store_pages();
  reply_created(req, r, "mkdir", parent);
}

void symlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  Filesystem& fs = filesystem_of(req);
  auto make = [&] { return fs.store.symlink(parent, name, target, caller_of(req), request_of(req)); };
  if (!fs.passthrough) return reply_created(req, make(), "symlink", parent);
  // A long target takes a page (tmpfs's rule): it must fit in the backing tmpfs too.
  std::uint64_t pages = shm::is_long_symlink(std::string_view(target).size()) ? 1 : 0;
  reply_created(req, fs.passthrough->charged(pages, make), "symlink", parent);
}

void link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t new_parent, const char* new_name) {
  reply_created(req, filesystem_of(req).store.link(ino, new_parent, new_name, request_of(req)), "link", ino);
}

void unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Filesystem& fs = filesystem_of(req);
  shm::Store::Unlinked unlinked;
  auto r = fs.store.unlink(parent, name, request_of(req), &unlinked);
  if (r) after_unlink(fs, unlinked);
  reply_done(req, r, "unlink", parent);
}

void rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Filesystem& fs = filesystem_of(req);
  auto r = fs.store.rmdir(parent, name, request_of(req));
  if (r) after_unlink(fs, {});
  reply_done(req, r, "rmdir", parent);
}

void rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t new_parent,
            const char* new_name, unsigned int flags) {
  Filesystem& fs = filesystem_of(req);
  shm::Store::Unlinked replaced;
  auto r = fs.store.rename(parent, name, new_parent, new_name, flags, request_of(req),
                           caller_of(req), &replaced);
  if (r) after_unlink(fs, replaced);
  reply_done(req, r, "rename", parent);
}

}  // namespace hostchanfs::fs::ops
