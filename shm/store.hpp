// The memory store: a thread-safe, memory-backed POSIX namespace with kernel tmpfs's
// accounting, that a process killed at any instruction cannot tear. It knows nothing of
// FUSE or containers; results are values or errno codes. This header is its whole
// interface; the files beside it are its parts.
//
// Regions (both memfds, owned by the Store or handed in by the controller):
//   meta: a persistent region (shm/persist): every change in an undo-logged transaction,
//         no lock inside, recovered and checked at attach. Its records and trees are
//         shm/persist/store_schema.hpp: inodes and directory entries in slot tables, the
//         page map and the directory indexes in B+trees, the quota's counters, the write
//         intents and the dedupe ring in its superblock. Fixed-size: the memory bound.
//   data: quota_pages fixed 4 KiB pages (file data, xattr blobs, long symlink targets),
//         read and written with pread/pwrite on the memfd, which is never mapped; a freed
//         page is punched out of the memfd when its tx commits, so memory falls when files
//         go.
//
// Parts (shm/), each with one idea and a narrow interface:
//   layout.hpp       the regions: format, attach (recover, check, finish), peek_usage, sizes
//   store_check.hpp  the store's invariants, run by every attach
//   quota.hpp        Quota: pages and inodes charged in the tx that uses them
//   inode_table.hpp  InodeTable: inode slots, attributes, the kernel's lookups
//   directory.hpp    Directory: entries by name (hashed) and by readdir cookie
//   page_map.hpp     PageMap: (inode, fork, index) -> data page, for every inode
//   data_region.hpp  DataRegion: bytes in and out of the data memfd
//   intents.hpp      Intents: writes that copy data outside the tx mutex
//   xattr_blob.hpp   XattrBlob: an inode's xattrs, packed into its data pages
//   acl.hpp          POSIX ACLs in the kernel's wire form: checks, mode sync, inheritance
//   dedupe.hpp       Dedupe: what recent mutating requests did, for their resends
//   tmpfs_rules.hpp  what tmpfs does that a program sees: sizes, names, setuid, times
//   store_impl.hpp   Store::Impl: the parts wired together, the locks and their order,
//                    and the lifetime of an inode (lifetime.cpp: charge, trims, freeing)
// and the operations over them: store_names.cpp (lookup, attributes, links, unlink,
// readdir, handles), store_rename.cpp, store_create.cpp (new inodes), store_data.cpp
// (read, write, fallocate, seek, copy_file_range), store_xattrs.cpp, store_acls.cpp
// (ACLs where chmod and new inodes meet them), store.cpp (create, attach, statfs).
//
// What survives a crash (any instruction of any thread, SIGKILL): every operation that
// returned is in the region; one in flight is wholly there or wholly absent once the next
// process attaches (recovery rolls its open tx back; work that an operation spreads over
// several txs — big truncates, unlinks, punches, fallocates — is recorded in the inode by
// its first tx and finished by attach). Exactly once: each mutating call may carry the
// FUSE request's identity (Request); its outcome is recorded in the same tx as the
// change, so a resend of it (the kernel's FUSE_NOTIFY_RESEND after a daemon restart) is
// answered from the record instead of being applied twice. A write of more than 1 MiB is
// applied in 1 MiB pieces, each all or nothing; FUSE writes are at most 1 MiB.
//
// Accounting is tmpfs's: file data in 4 KiB pages (holes free), one inode per file,
// directory, symlink or hard link, long symlinks (>= 128 bytes) use a page. xattr bytes
// are charged to the byte quota in whole pages per inode (tmpfs charges them to inode
// space instead; this is the one documented difference).
//
// Memory bound: quota bytes of data + the meta region (Store::meta_region_size), fixed at
// creation from the quota and the inode limit, at most 20% of the quota + 16 MiB (a larger
// inode limit is refused): no client can grow it, whatever it does.
//
// Inode numbers are slot indices + 1 (root = 1) with a generation that changes every time
// a slot is reused. A slot is released only when nlink == 0, the kernel's lookup count is
// 0 and no handle is open (the rule in full: shm/store_impl.hpp).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sys/result.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::shm {

using Ino = std::uint64_t;
inline constexpr Ino kRootIno = 1;
inline constexpr std::uint64_t kPageSize = 4096;
inline constexpr std::size_t kNameMax = 255;
inline constexpr std::size_t kSymlinkMax = 4095;          // PATH_MAX - 1
inline constexpr std::size_t kXattrNameMax = 255;
inline constexpr std::size_t kXattrValueMax = 65536;
inline constexpr std::size_t kXattrBlobMax = std::size_t{512} << 10;  // per inode, see setxattr
// tmpfs's largest file (MAX_LFS_FILESIZE, also the FUSE superblock's s_maxbytes): the
// page map keys any page index below 2^51, which this stays under, at no cost for holes.
inline constexpr std::uint64_t kMaxFileSize = std::uint64_t{INT64_MAX};

// Who asks. `privileged` is CAP_FSETID (root): such a writer keeps setuid/setgid bits.
// Unprivileged unless said otherwise, so a forgotten flag never keeps a setuid bit.
// `umask` is the creating process's (FUSE_DONT_MASK: the kernel leaves it to the
// filesystem): a new inode's mode loses those bits unless its directory has a default
// ACL, which then decides instead (shm/acl.hpp).
struct Caller {
  uid_t uid = 0;
  gid_t gid = 0;
  bool privileged = false;
  mode_t umask = 0;
};

struct Attr {
  Ino ino = 0;
  std::uint64_t generation = 0;
  mode_t mode = 0;
  nlink_t nlink = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  dev_t rdev = 0;
  std::uint64_t size = 0;
  std::uint64_t blocks = 0;  // 512-byte units, as st_blocks
  timespec atime{}, mtime{}, ctime{};
  std::uint32_t opens = 0;   // open handles (the kernel's open files), not a stat field

  struct stat to_stat() const noexcept;
};

struct TimeChange {
  enum class Kind { kOmit, kNow, kSet } kind = Kind::kOmit;
  timespec value{};
};

// One setattr: each field that is set is applied, all or nothing.
struct AttrChange {
  std::optional<mode_t> mode;        // permission bits (07777); the type never changes
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::optional<std::uint64_t> size;
  TimeChange atime, mtime;
  std::optional<timespec> ctime;
  bool kill_suid_sgid = false;       // the kernel asked us to drop setuid/setgid (killpriv)
};

struct DirEntry {
  std::string_view name;
  Ino ino;
  mode_t mode;                 // at least the type bits
  std::uint64_t next_offset;   // offset to pass to continue after this entry
};

struct StatFs {
  std::uint64_t block_size = kPageSize;
  std::uint64_t blocks = 0, blocks_free = 0;
  std::uint64_t files = 0, files_free = 0;
  std::uint64_t name_max = kNameMax;
};

struct StoreOptions {
  std::uint64_t size_bytes = 64ull << 20;  // the byte quota; rounded up to whole pages
  std::uint64_t max_inodes = 0;            // 0: one per 4 KiB of quota, at least 1024
  uid_t root_uid = 0;
  gid_t root_gid = 0;
  mode_t root_mode = 01777;
  // Page-map entries one tx drops or adds at most when a truncate, punch, unlink or
  // fallocate spans many pages (0: the default, 4096). Tests make it small.
  std::uint64_t chunk_pages = 0;
};

// Who a mutating call comes from: the FUSE request's unique id, with bit 63 set when the
// kernel resends it (FUSE_NOTIFY_RESEND: a daemon read it and died before answering).
// A call with an identity records its outcome in the tx that applies it; a resent one
// that finds its record is answered from it and applies nothing. 0: no identity (tests,
// and calls that undo a reply the kernel never received).
struct Request {
  static constexpr std::uint64_t kResend = std::uint64_t{1} << 63;  // FUSE_UNIQUE_RESEND
  std::uint64_t unique = 0;
  std::uint64_t id() const noexcept { return unique & ~kResend; }
  bool resent() const noexcept { return (unique & kResend) != 0 && id() != 0; }
};

// What a store uses, read from its header in the meta memfd without attaching to it and
// without asking its daemon: the controller's `ls` must never wait on a daemon that
// died or hangs. EPROTO when the region is not (yet) a formatted store.
struct Usage {
  std::uint64_t pages_used = 0, quota_pages = 0;
  std::uint64_t inodes_used = 0, max_inodes = 0;
};
Result<Usage> peek_usage(int meta_fd);

class Store {
 public:
  // A fresh store in memfds it owns.
  static Result<std::unique_ptr<Store>> create(const StoreOptions& opts);
  // A fresh store formatted into the given memfds (sized here). The controller keeps
  // duplicates of them so that a restarted daemon can attach().
  static Result<std::unique_ptr<Store>> create_in(const StoreOptions& opts, UniqueFd meta,
                                                   UniqueFd data);
  // Re-attach to regions formatted by create_in(): recover (roll back the tx a dead
  // process left open), check every invariant of the store, and finish the work a dead
  // process left (write intents, truncations, unreferenced inodes). EPROTO when it is not
  // a store (magic, version, sizes), EUCLEAN when it is one that cannot be trusted; `why`
  // gets one line naming what is wrong.
  static Result<std::unique_ptr<Store>> attach(UniqueFd meta, UniqueFd data, std::string* why = nullptr);

  // The size of the meta region for a quota and an inode limit: the fixed bound on
  // metadata memory (sparse: only the pages in use cost memory).
  static std::uint64_t meta_region_size(std::uint64_t quota_pages, std::uint64_t max_inodes);
  static std::uint64_t default_max_inodes(std::uint64_t size_bytes);
  // The largest inode limit whose meta region stays within 20% of the quota + 16 MiB;
  // create refuses a larger one (EINVAL).
  static std::uint64_t max_inodes_allowed(std::uint64_t size_bytes);
  // Why these options cannot make a store, as one line for people; nullopt when they can.
  static std::optional<std::string> refuse_options(const StoreOptions& opts);

  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // --- names (each successful call that returns an Attr counts one kernel lookup) ---
  Result<Attr> lookup(Ino parent, std::string_view name);
  void forget(Ino ino, std::uint64_t nlookup);
  Result<Attr> getattr(Ino ino);
  Result<Attr> setattr(Ino ino, const AttrChange& change, const Caller& caller,
                       const Request& req = {});
  // Regular files, FIFOs, sockets; character/block devices as metadata only.
  Result<Attr> mknod(Ino parent, std::string_view name, mode_t mode, dev_t rdev,
                     const Caller& caller, const Request& req = {});
  // A regular file (the type bits of `mode` are ignored), opened: one lookup and one
  // open handle counted, all or nothing. The file and the handle of open(O_CREAT).
  Result<Attr> create_and_open(Ino parent, std::string_view name, mode_t mode,
                               const Caller& caller, const Request& req = {});
  Result<Attr> mkdir(Ino parent, std::string_view name, mode_t mode, const Caller& caller,
                     const Request& req = {});
  // O_TMPFILE: a regular file without a name, owned as if made in `dir`, opened (one
  // lookup and one handle counted, its inode charged), nlink 0. link() may give it its
  // first name (the kernel allows that unless it was opened O_EXCL); if none does, its
  // last release frees it, as an unlinked file's.
  Result<Attr> create_unnamed(Ino dir, mode_t mode, const Caller& caller, const Request& req = {});
  Result<Attr> symlink(Ino parent, std::string_view name, std::string_view target,
                       const Caller& caller, const Request& req = {});
  Result<std::string> readlink(Ino ino);
  Result<Attr> link(Ino ino, Ino new_parent, std::string_view new_name, const Request& req = {});
  // What an unlink or a rename took a name from, written only when the call succeeds and
  // took one (not for a rename to a free name, an exchange, or a resent request the store
  // had already carried out): for `--charge writer`, whose backing file goes with the
  // inode's last link.
  struct Unlinked {
    Ino ino = 0;
    std::uint64_t generation = 0;
    mode_t mode = 0;
  };
  Result<void> unlink(Ino parent, std::string_view name, const Request& req = {}, Unlinked* unlinked = nullptr);
  Result<void> rmdir(Ino parent, std::string_view name, const Request& req = {});
  // flags: 0, RENAME_NOREPLACE or RENAME_EXCHANGE; RENAME_WHITEOUT (alone or with
  // NOREPLACE) leaves a whiteout, a 0:0 character device owned by `caller`, under the old
  // name in the same tx, as tmpfs does (the kernel lets only CAP_MKNOD ask).
  Result<void> rename(Ino parent, std::string_view name, Ino new_parent,
                      std::string_view new_name, unsigned flags, const Request& req = {},
                      const Caller& caller = {}, Unlinked* replaced = nullptr);

  // Directory listing from `offset` (0 = start). `emit` returns false when it has no room;
  // that entry is not consumed. With `plus`, every consumed entry other than . and ..
  // counts one kernel lookup and `emit` also receives its attributes.
  using DirEmitter = std::function<bool(const DirEntry&, const Attr*)>;
  Result<void> readdir(Ino dir, std::uint64_t offset, bool plus, const DirEmitter& emit);

  // A directory may be listed: ENOTDIR for anything else. No handle is counted: the
  // kernel holds the inode while the directory is open.
  Result<void> opendir(Ino ino);

  // --- handles: an open handle keeps an unlinked inode alive ---
  // The inode's attributes with this handle counted (a resend: as they are now).
  Result<Attr> open(Ino ino, const Request& req = {});
  // (The kernel sends RELEASE after close(2) has returned: the daemon's statfs waits for
  // the releases its workers have read, fs/session_io.hpp wait_for_releases.)
  void release(Ino ino, const Request& req = {});

  // A program read `ino` (an open for reading, a READ, a READDIR): its atime follows
  // tmpfs mounted relatime (relatime_due in tmpfs_rules.hpp). True when atime changed:
  // the kernel's cached attributes are then stale. The kernel never updates atime on a
  // FUSE inode itself (S_NOATIME), and serves cached reads without asking, so the daemon
  // applies the rule where it learns of a read.
  Result<bool> accessed(Ino ino, const Request& req = {});

  // --- data ---
  // Copies up to out.size() bytes from `offset` into `out` (holes read as zeros); the
  // count, short at the end of the file, 0 at or past it.
  Result<std::size_t> read(Ino ino, std::uint64_t offset, std::span<std::byte> out);
  // Writes what fits: a short count (whole pages) when the quota runs out part way,
  // ENOSPC when not even the first new page fits. A writer that is not privileged drops
  // setuid (and setgid with group-exec), as tmpfs does.
  Result<std::size_t> write(Ino ino, std::uint64_t offset, std::span<const iovec> data,
                            const Caller& caller, const Request& req = {});
  Result<std::size_t> write(Ino ino, std::uint64_t offset, std::span<const std::byte> data,
                            const Caller& caller, const Request& req = {});
  // mode: 0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE.
  Result<void> fallocate(Ino ino, int mode, std::uint64_t offset, std::uint64_t len,
                         const Request& req = {});
  // whence: SEEK_DATA or SEEK_HOLE (others are the kernel's business); EINVAL for others.
  Result<std::uint64_t> seek(Ino ino, std::uint64_t offset, int whence);
  // Copies up to `len` bytes from `in` at `in_offset` to `out` at `out_offset`, in
  // pieces of 1 MiB; the count copied, short at the end of `in` or when `out` runs out
  // of quota. An error only when nothing was copied (the next call gets it). flags: 0.
  Result<std::size_t> copy_file_range(Ino in, std::uint64_t in_offset, Ino out,
                                      std::uint64_t out_offset, std::size_t len, unsigned flags,
                                      const Caller& caller, const Request& req = {});

  // --- xattrs ---
  // Namespaces user., trusted., security., and the POSIX ACLs system.posix_acl_access and
  // system.posix_acl_default (shm/acl.hpp), kept as tmpfs keeps them: setting an access
  // ACL sets the mode's permission bits (and drops setgid with `acl_kill_sgid`, the
  // kernel's FUSE_SETXATTR_ACL_KILL_SGID), one the mode bits say in full is stored as
  // none; removing an ACL that is not there succeeds. EINVAL (EOPNOTSUPP for another
  // version) for bytes the kernel would not take as an ACL.
  // An empty `out` asks for the size. ERANGE when `out` is too small.
  Result<std::size_t> getxattr(Ino ino, std::string_view name, std::span<std::byte> out);
  // flags: 0, XATTR_CREATE or XATTR_REPLACE. The xattrs of one inode take at most
  // kXattrBlobMax bytes together (8 + name + value each): ENOSPC beyond.
  Result<void> setxattr(Ino ino, std::string_view name, std::span<const std::byte> value,
                        int flags, const Request& req = {}, bool acl_kill_sgid = false);
  // NUL-separated names; an empty `out` asks for the size.
  Result<std::size_t> listxattr(Ino ino, std::span<char> out);
  Result<void> removexattr(Ino ino, std::string_view name, const Request& req = {});

  // Waits for releases in progress (see release()).
  StatFs statfs() const;
  std::uint64_t pages_used() const;
  std::uint64_t inodes_used() const;
  std::uint64_t quota_pages() const;
  std::uint64_t max_inodes() const;

  int meta_fd() const noexcept;
  int data_fd() const noexcept;

  // Every invariant attach checks, and that every free page is a hole (for tests); the
  // first problem as one line.
  std::optional<std::string> verify() const;
  // Open handles of `ino` (for tests and diagnostics); ESTALE when there is no such inode.
  Result<std::uint32_t> open_handles(Ino ino) const;

  struct Impl;

 private:
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hostchanfs::shm
