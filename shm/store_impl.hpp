// Store::Impl: the parts of the store wired together, the locks that make it thread-safe,
// and the steps the public operations share. The operations themselves are grouped in
// store_names.cpp, store_rename.cpp, store_create.cpp, store_data.cpp and
// store_xattrs.cpp; store.cpp makes, attaches and accounts; lifetime.cpp is the lifetime
// of an inode (below).
//
// Locks (process-local: a re-attaching daemon starts with fresh ones; none lives in the
// region). Order: an intent lease (writes), ns_mutex, one stripe, page_map_lock, the tx
// mutex (innermost, taken by persist::Tx). Never two stripes at once.
//   ns_mutex     exclusive: every change of the namespace (entries, nlink, parent, an
//                inode slot's liveness, kChargeReleased, an inode's pages going back).
//                Shared: everything else. Directory trees change only under it exclusive,
//                so readers holding it shared walk them unlocked.
//   stripes      per inode (ino % kStripes), with ns_mutex shared: the inode's attributes,
//                size, times, opens, xattrs and its page-map entries (exclusive to change,
//                shared to read). mode's type bits are read without it (load_mode).
//   page_map_lock the page map's tree, shared by all inodes: a tx that changes it under
//                ns_mutex shared holds it exclusive (with the stripe), readers under
//                ns_mutex shared hold it shared while they walk the tree, not while they
//                copy data. Under ns_mutex exclusive neither is needed.
// The kernel's lookup counts are atomics (InodeTable), changed under ns_mutex shared.
//
// Lifetime of an inode (lifetime.cpp). Its charge (its inode count now, its pages by page
// map work) goes back when its last name and its last open handle are gone (nlink == 0,
// opens == 0), as on tmpfs; its slot goes when, in addition, the kernel's lookup count is
// 0 (the kernel may still name it until it forgets it). The root is never freed. Work on
// the page map that one tx cannot hold (dropping a big file's pages, a big fallocate) is
// recorded in the inode (work_from, flags) by the tx of the operation and done in txs of
// sb.chunk_pages entries each, holding the operation's locks throughout; attach finishes
// what a dead process left.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string_view>
#include <vector>

#include "shm/data_region.hpp"
#include "shm/dedupe.hpp"
#include "shm/directory.hpp"
#include "shm/inode_table.hpp"
#include "shm/intents.hpp"
#include "shm/page_map.hpp"
#include "shm/persist/page_pool.hpp"
#include "shm/persist/region.hpp"
#include "shm/quota.hpp"
#include "shm/store.hpp"
#include "shm/tmpfs_rules.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::shm {

inline constexpr std::size_t kStripes = 256;

using persist::Tx;
namespace rec = persist::store;

// The record a new inode of `mode` starts with, not yet in the region: its owner, times
// and kind-specific fields (store_create.cpp).
InodeRecord new_record(mode_t mode, dev_t rdev, const InodeRecord& parent, Ino parent_ino,
                       std::string_view symlink_target, const Caller& caller, bool open);

struct Store::Impl {
  Impl(UniqueFd data_memfd, std::unique_ptr<persist::Region> meta_region);

  UniqueFd data_fd;  // the region's extra file 1: declared first, so it outlives the region
  std::unique_ptr<persist::Region> region;
  rec::Superblock& sb;
  Quota quota;
  InodeTable inodes;
  Directory dirs;
  PageMap pages;
  persist::PagePool data_pool;
  DataRegion data;
  Intents intents;
  Dedupe dedupe;

  mutable std::shared_mutex ns_mutex;
  mutable std::array<std::shared_mutex, kStripes> stripes;
  mutable std::shared_mutex page_map_lock;

  std::shared_mutex& stripe(Ino ino) const { return stripes[ino % kStripes]; }

  Attr locked_attr(Ino ino, const InodeRecord& r) const {
    std::shared_lock lk(stripe(ino));
    return inodes.attr_of(ino, r);
  }

  // --- exactly once (dedupe.hpp) ---
  // What `req` did, if it is a resend of a request that was applied (no lock held).
  std::optional<Outcome> replayed(const Request& req, Mutation op);
  // The entry a resent create, mkdir, mknod, symlink or link gets: the inode it made (its
  // lookup was counted by the tx that made it). ENOENT when it is gone since.
  Result<Attr> entry_of(const Outcome& o) const;

  // --- directory inodes (namespace lock held) ---
  Result<InodeRecord*> dir_of(Ino ino) const {
    HC_TRY(r, inodes.get(ino));
    if (!is_dir(*r)) return std::errc::not_a_directory;
    return r;
  }
  // A directory that may receive a new entry: not one already removed (a removed
  // directory the kernel still holds, e.g. a cwd, must stay empty, or freeing it would
  // leak entries).
  Result<InodeRecord*> live_dir_of(Ino ino) const {
    HC_TRY(r, dir_of(ino));
    if (r->nlink == 0) return std::errc::no_such_file_or_directory;
    return r;
  }
  struct Named {
    std::uint32_t slot;  // the entry
    Ino ino;
    InodeRecord* r;
  };
  Result<Named> named(Ino dir, std::string_view name) const;
  // An entry in, or out, and the directory's size with it (namespace lock exclusive).
  Result<void> add_entry(Tx& tx, Ino dir, InodeRecord& d, std::string_view name, Ino ino, mode_t mode);
  void remove_entry(Tx& tx, InodeRecord& d, std::uint32_t slot);
  // Is `ancestor` on the path from `ino` up to the root?
  bool is_ancestor(Ino ancestor, Ino ino) const;

  // A new inode of `mode` named `name` in `parent`, all or nothing (store_create.cpp).
  // It counts one kernel lookup, and one open handle when `open`. With `unnamed`
  // (O_TMPFILE), `name` is ignored: the inode gets no entry and nlink 0.
  Result<Attr> make_node(Ino parent, std::string_view name, mode_t mode, dev_t rdev,
                         std::string_view symlink_target, const Caller& caller, bool open,
                         const Request& req, Mutation op, bool unnamed = false);

  // --- xattrs (store_xattrs.cpp) ---
  // The packed xattrs of `r` (shm/xattr_blob.hpp) into `out`: the inode's stripe held, or
  // ns_mutex exclusive.
  Result<void> read_xattrs(Ino ino, const InodeRecord& r, std::vector<std::byte>& out) const;
  // In `tx` (page_map_lock exclusive, or ns_mutex exclusive): bytes [at, at + bytes.size())
  // of the blob of `r` become `bytes`, and the blob `new_len` long (the bytes between
  // stay). The charge is the caller's (Quota::recharge_xattrs, r.xattr_bytes).
  Result<void> rewrite_xattrs(Tx& tx, Ino ino, InodeRecord& r, std::size_t at, std::span<const std::byte> bytes,
                              std::size_t new_len);

  // --- ACLs (store_acls.cpp) ---
  // Before a chmod to `mode` (the stripe held): the access ACL of `r` as the chmod leaves
  // it, into `value`, and where in the blob that value goes (same size: rewritten in
  // place in the chmod's tx); nullopt when `r` has none.
  Result<std::optional<std::size_t>> plan_acl_chmod(Ino ino, const InodeRecord& r, mode_t mode,
                                                    std::vector<std::byte>& value) const;
  // Before a new inode of `mode` is made under `parent` (ns_mutex exclusive): the xattrs
  // it inherits from the parent's default ACL into `blob` (empty when none), their charge
  // returned; `mode`'s permission bits masked by that ACL, or by `umask` when the parent
  // has none (posix_acl_create).
  Result<std::uint64_t> inherit_acls(Ino parent_ino, const InodeRecord& parent, mode_t& mode, mode_t umask,
                                     std::vector<std::byte>& blob) const;
  // In the tx that made `r` (ns_mutex exclusive): those xattrs, charged.
  Result<void> add_inherited(Tx& tx, Ino ino, InodeRecord& r, std::span<const std::byte> blob,
                             std::uint64_t charge);

  // --- data (store_data.cpp) ---
  // A write in pieces of at most 1 MiB, each all or nothing, each recording `op` with the
  // bytes written so far (`done` went before this call: copy_file_range's chunks).
  Result<std::size_t> write_all(Ino ino, std::uint64_t offset, std::span<const iovec> source,
                                const Caller& caller, const Request& req, Mutation op, std::uint64_t done);
  Result<std::size_t> write_piece(Ino ino, InodeRecord& r, std::uint64_t offset, std::span<const iovec> source,
                                  std::size_t len, const Intents::Lease& lease, const Caller& caller,
                                  const Request& req, Mutation op, std::uint64_t done);

  // --- lifetime (lifetime.cpp) ---
  // In the tx of a change that may have dropped the last name or handle (namespace lock
  // exclusive): the charge goes back if none is left, and the slot too if the kernel's
  // lookups are gone and nothing is left to drop. Pages to drop become the inode's work.
  void settle(Tx& tx, Ino ino, InodeRecord& r);
  // After that tx commits (namespace lock still exclusive): the work, then the slot.
  void finish(Ino ino, std::uint64_t generation);
  // With no lock held: take the namespace lock and finish `ino` if it is still that
  // generation (the last lookup forgotten, the last handle released).
  void free_if_unreferenced(Ino ino, std::uint64_t generation);
  // Every page of `r` goes back (its xattr charge now, its pages as work).
  void drop_everything(Tx& tx, InodeRecord& r);
  // Work on the page map recorded in `r`, done in txs; the caller holds ns_mutex
  // exclusive, or shared with the inode's stripe (run_work_shared takes page_map_lock for
  // each tx).
  static bool has_work(const InodeRecord& r) { return r.work_from != rec::kNoWork; }
  void work_step(Ino ino, InodeRecord& r);
  void run_work_shared(Ino ino, InodeRecord& r);
  // At attach: give back what write intents hold, finish every inode's work, release or
  // free what no name, handle or lookup holds any longer.
  void recover();
};

}  // namespace hostchanfs::shm
