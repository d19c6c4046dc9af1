// `--charge writer`: regular files' data served by the kernel itself, through FUSE
// passthrough (Linux >= 6.9), from backing files on a private tmpfs. Everything libfuse
// 3.14 cannot do for passthrough lives here, so that it can go when libfuse >= 3.17
// (fuse_passthrough_open, conn->want FUSE_CAP_PASSTHROUGH) is the baseline; the session's
// I/O layer (fs/session_io.cpp) only calls the two reply hooks at the bottom.
//
// The backing tmpfs: made with fsopen/fsconfig/fsmount, sized to the quota, never
// attached to any path (the descriptor of its root is the only way in; the controller
// holds one, as it holds the store's memfds). One file per regular inode, named
// "<ino>.<generation>" so that a daemon restarted on the same store finds it, created at
// the first open (or truncate) with the store's times. Its name goes when the inode's last
// link goes (unlink, rename over it) with no open left, else at its last release (so that
// a restarted daemon can reopen it); our descriptor at its last release: tmpfs frees the
// memory when both are gone, as tmpfs frees an unlinked file at its last close. (One difference:
// an unlinked file reopened after its last close, through /proc/PID/fd of an O_PATH
// descriptor, is empty.)
//
// One quota: the store still holds names, long symlinks and xattrs, and its pages are
// mirrored into one more backing file ("store-pages"), fallocated to exactly the store's
// pages in use. A symlink or setxattr first reserves its worst case there (one page for a
// long symlink, the value's pages for an xattr) and fails with the tmpfs's ENOSPC when it
// does not fit; afterwards the mirror is trimmed to what the store really uses. So data,
// long symlinks and xattrs stop together at the tmpfs's byte.
//
// Attributes: size, blocks, atime and mtime of a regular file are its backing file's
// (the kernel writes it directly); ctime is the later of the store's and the backing
// file's mtime. Truncate and utimens are applied to both.
//
// Per inode, one backing id (FUSE_DEV_IOC_BACKING_OPEN) while any open of the inode
// lasts: the kernel refuses a second id for an inode that is open (EIO). The ids are kept
// in the session record (fs/backing_ids.hpp), so that a restarted daemon gives an inode
// that is still open the id the dead daemon got; the last open is the store's count (the
// store's open handles are exactly once across restarts, and a RELEASE of a handle the
// dead daemon opened comes to its successor), read under the inode's shard lock after the
// store's open/release, so that an open and a last release of one inode never cross (an
// open of one inode and the release of another, the next create beside the last one's
// release, do not wait for each other's system calls). The name of
// an unlinked file's backing file stays while the file is open, so that a restarted
// daemon can reopen it (for fallocate, lseek, stat).
#pragma once

#include <sys/uio.h>

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <linux/fuse.h>

#include "fs/backing_ids.hpp"
#include "shm/store.hpp"
#include "sys/result.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::fs {

// Why `--charge writer` cannot work on this machine (a kernel before 6.9, no
// CAP_SYS_ADMIN to make the backing tmpfs), as one line for people; nullopt when it can.
std::optional<std::string> refuse_writer_charge();

// A private tmpfs for `quota_bytes` (rounded up to pages) and `max_inodes` backing files,
// detached: the descriptor of its root.
Result<UniqueFd> make_backing_tmpfs(std::uint64_t quota_bytes, std::uint64_t max_inodes);

// Whether `fd` is the root directory of a tmpfs (a descriptor handed over or taken back).
bool is_tmpfs_root(int fd);

// Bytes in use in a backing tmpfs (data, and the store's pages mirrored), for `ls`.
Result<std::uint64_t> backing_bytes_used(int backing_root);

class Passthrough {
 public:
  // Whether the inode an open is for was made by the same request (CREATE, O_TMPFILE):
  // then its backing file is made at once, else looked for first.
  enum class Inode { kExisting, kCreated };

  // `ids`: the connection's backing ids (in the session record when a keeper holds one).
  Passthrough(UniqueFd backing_root, shm::Store& store, BackingIds ids);
  Passthrough(const Passthrough&) = delete;
  Passthrough& operator=(const Passthrough&) = delete;

  // The /dev/fuse descriptor the backing ids are opened on (the session's), before the
  // loop: what a dead daemon left half done with the ids is finished here.
  void set_fuse_fd(int fd);

  // An open of regular file `a`, counted by the store already: its backing file (made if
  // missing) gets or keeps its backing id, and this thread's next OPEN/CREATE reply
  // carries it (passthrough_patch_reply).
  Result<void> open(const shm::Attr& a, Inode inode);
  // Whether this thread's last open() made the backing file (with the store's size and
  // times, so that a reply needs nothing from it).
  static bool made_backing_file() noexcept;
  // The same, for a reply written outside libfuse (O_TMPFILE, fs/tmpfile.cpp): the id
  // for the caller to put in it.
  Result<std::int32_t> open_unarmed(const shm::Attr& a, Inode inode);
  // After the store released a handle of `ino`: when the store counts no open left, the
  // backing id and our descriptor go (and the backing file's name, if no link is left).
  void release(shm::Ino ino);
  // After the kernel forgot `ino` (the store may have freed its pages).
  void forgotten(shm::Ino ino);
  // After an unlink or a rename that may have removed the last link of `victim`.
  void unlinked(const shm::Store::Unlinked& victim);

  // The backing descriptor of an open inode (FALLOCATE, LSEEK, COPY_FILE_RANGE, and a
  // READ/WRITE should one ever come), -1 if none.
  int fd_of(shm::Ino ino);
  // Size, blocks and times of a regular file from its backing file.
  void overlay(shm::Attr& a);
  // truncate and utimens of `ino` on its backing file, before the store's setattr.
  Result<void> apply(const shm::Attr& a, const shm::AttrChange& change);
  // The backing tmpfs's blocks into a statfs answer.
  void overlay(shm::StatFs& s);

  // Runs `op` (a symlink or setxattr) with `max_new_pages` reserved in the store mirror;
  // ENOSPC, without running it, when they do not fit.
  template <class Op>
  auto charged(std::uint64_t max_new_pages, Op op) -> decltype(op()) {
    std::lock_guard lk(charge_mutex_);
    if (auto r = reserve_locked(max_new_pages); !r) return r.error();
    auto result = op();
    trim_locked();
    return result;
  }
  // After anything that may have given store pages back (unlink, rmdir, rename,
  // removexattr, release, forget), and after a new inode: the ACLs it inherited from a
  // default ACL took store pages that were not reserved first (a few at most: the kernel
  // sets no ACL above a page); the mirror follows them.
  void settle_store_pages();

 private:
  // Our descriptor of an open inode's backing file (ids_ holds its backing id).
  struct Backing {
    std::uint64_t generation = 0;
    UniqueFd fd;
  };
  // Our descriptor of the backing file of `a`, made (with the inode's times) if missing:
  // looked for first for an existing inode, made first for a created one.
  Result<int> open_backing_file(const shm::Attr& a, Inode inode);
  // The descriptor of `ino` while it is open (reopened by name after a restart), -1 if
  // none; its shard locked.
  int fd_locked(shm::Ino ino);
  // The recorded backing id of `ino` (ids_mutex_ taken for the look).
  std::optional<BackingIds::Entry> known_id(shm::Ino ino);
  // With the shard of `ino` locked, after the store's release or unlink of `ino`: what the
  // store counts now decides whether the id, our descriptor and the backing file's name go.
  void settle_locked(shm::Ino ino, std::uint64_t generation);
  // At start: a backing file whose inode is gone or has neither a link nor an open left
  // (a daemon died between the store's change and the backing file's) goes; so do backing
  // ids of inodes the store counts no open of.
  void sweep_orphans();
  Result<void> reserve_locked(std::uint64_t pages);
  void trim_locked();

  UniqueFd root_;
  shm::Store& store_;
  int fuse_fd_ = -1;
  // Our descriptors by inode, in shards by inode number. A shard's mutex guards its table
  // and orders everything done for one of its inodes (opens, last releases, unlinks). It
  // is taken after the store's open/release/unlink returned, and held across store reads
  // (getattr): lock order shard, ids_mutex_, then the store's locks (the store never calls
  // out), so neither is taken under them: overlay(Attr&), which readdirplus calls from
  // inside the store, finds the backing file by name.
  struct Shard {
    std::mutex mutex;
    std::unordered_map<shm::Ino, Backing> table;
  };
  static constexpr std::size_t kShards = 64;
  Shard& shard(shm::Ino ino) { return shards_[ino % kShards]; }
  std::array<Shard, kShards> shards_;
  // Guards ids_ (not thread-safe; its crash recovery needs one BACKING_OPEN at a time).
  std::mutex ids_mutex_;
  BackingIds ids_;
  std::mutex charge_mutex_;  // guards mirror_ and mirrored_pages_; never held with a shard's
  UniqueFd mirror_;
  std::uint64_t mirrored_pages_ = 0;
};

// --- the session's I/O layer (fs/session_io.cpp) calls these -----------------------------
// Serve with passthrough (set before the session starts; null: channel mode).
void set_passthrough(Passthrough* p) noexcept;
// The INIT request the kernel sent: whether it offers FUSE_PASSTHROUGH.
void passthrough_note_init(const fuse_init_in& in, std::size_t len) noexcept;
// Every reply, before it is written: the INIT reply asks for passthrough (flags2,
// max_stack_depth 1); an OPEN or CREATE reply of this thread armed by Passthrough::open
// gets FOPEN_PASSTHROUGH and the backing id. `unique` is the request this thread handles.
void passthrough_patch_reply(std::uint64_t unique, std::uint64_t init_unique, iovec* iov,
                             int count) noexcept;
// Whether the kernel accepted passthrough in INIT (for logs, refusals and tests).
bool passthrough_negotiated() noexcept;

}  // namespace hostchanfs::fs
