// rename and its flags (RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT): one tx, all
// or nothing.
#include <linux/fs.h>
#include <sys/stat.h>

#include <mutex>
#include <vector>

#include "shm/store_impl.hpp"

namespace hostchanfs::shm {

namespace {

// A directory `dir` moves from `from` to `to`: its ".." and both link counts follow.
void reparent(Tx& tx, InodeRecord& dir, Ino to_ino, InodeRecord& from, InodeRecord& to) {
  tx.set(dir.parent, std::uint64_t{to_ino});
  tx.set(from.nlink, from.nlink - 1);
  tx.set(to.nlink, to.nlink + 1);
}

}  // namespace

Result<void> Store::rename(Ino old_parent_ino, std::string_view old_name, Ino new_parent_ino,
                           std::string_view new_name, unsigned flags, const Request& req,
                           const Caller& caller, Unlinked* replaced) {
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT)) return std::errc::invalid_argument;
  if ((flags & RENAME_EXCHANGE) && (flags & (RENAME_NOREPLACE | RENAME_WHITEOUT)))
    return std::errc::invalid_argument;
  auto& s = *impl_;
  if (s.replayed(req, Mutation::kRename)) return success();
  HC_TRYV(check_name(old_name));
  HC_TRYV(check_name(new_name));
  std::unique_lock lk(s.ns_mutex);
  HC_TRY(old_parent, s.dir_of(old_parent_ino));
  HC_TRY(new_parent, s.live_dir_of(new_parent_ino));
  HC_TRY(src, s.named(old_parent_ino, old_name));
  auto dst_slot = s.dirs.find(new_parent_ino, new_name);
  InodeRecord& sr = *src.r;
  const Ino src_ino = src.ino;
  const Ino dst_ino = dst_slot ? Ino{s.dirs.entry(*dst_slot).ino} : 0;
  InodeRecord* dr = dst_slot ? s.inodes.find(dst_ino) : nullptr;
  if (dst_slot && !dr) return static_cast<std::errc>(ESTALE);  // the checker makes sure this cannot be
  const bool moves = old_parent_ino != new_parent_ino;
  timespec ts = now();

  if (flags & RENAME_EXCHANGE) {
    if (!dst_slot) return std::errc::no_such_file_or_directory;
    if (src_ino == dst_ino) return success();
    // Neither may end up inside itself.
    if (is_dir(sr) && s.is_ancestor(src_ino, new_parent_ino)) return std::errc::invalid_argument;
    if (is_dir(*dr) && s.is_ancestor(dst_ino, old_parent_ino)) return std::errc::invalid_argument;
    Tx tx(*s.region);
    // Swap the two entries' targets in place: names and cookies stay where they are.
    s.dirs.retarget(tx, src.slot, dst_ino, dr->mode);
    s.dirs.retarget(tx, *dst_slot, src_ino, sr.mode);
    if (moves && is_dir(sr)) reparent(tx, sr, new_parent_ino, *old_parent, *new_parent);
    if (moves && is_dir(*dr)) reparent(tx, *dr, old_parent_ino, *new_parent, *old_parent);
    touch_c(tx, sr, ts);
    touch_c(tx, *dr, ts);
    touch_mc(tx, *old_parent, ts);
    if (moves) touch_mc(tx, *new_parent, ts);
    s.dedupe.record(tx, req, Mutation::kRename);
    tx.commit();
    return success();
  }

  if (dst_slot && (flags & RENAME_NOREPLACE)) return std::errc::file_exists;
  if (dst_slot && src_ino == dst_ino) return success();  // two links to one file: POSIX no-op
  if (is_dir(sr)) {
    if (s.is_ancestor(src_ino, new_parent_ino)) return std::errc::invalid_argument;
    if (dr && !is_dir(*dr)) return std::errc::not_a_directory;
    if (dr && !s.dirs.empty(dst_ino)) return std::errc::directory_not_empty;
  } else if (dr && is_dir(*dr)) {
    return std::errc::is_a_directory;
  }
  const std::uint64_t dst_generation = dr ? s.inodes.generation(dst_ino) : 0;
  // A whiteout inherits a default ACL as any new inode does (no umask: it has no
  // permission bits to lose), looked up before the tx.
  thread_local std::vector<std::byte> inherited;
  std::uint64_t inherited_charge = 0;
  mode_t whiteout_mode = S_IFCHR;
  if (flags & RENAME_WHITEOUT) {
    HC_TRY(charge, s.inherit_acls(old_parent_ino, *old_parent, whiteout_mode, 0, inherited));
    inherited_charge = charge;
  }
  Tx tx(*s.region);
  if (dst_slot) {
    s.dirs.retarget(tx, *dst_slot, src_ino, sr.mode);  // it keeps its name and cookie
  } else {
    HC_TRYV(s.add_entry(tx, new_parent_ino, *new_parent, new_name, src_ino, sr.mode));
  }
  s.remove_entry(tx, *old_parent, src.slot);
  if (flags & RENAME_WHITEOUT) {
    // tmpfs's whiteout: a character device 0:0 with no permission bits, owned as any new
    // inode. It takes an inode as a mknod does: ENOSPC without one, and nothing moved. No
    // lookup is counted: the kernel learns of it by a later lookup.
    const InodeRecord init = new_record(whiteout_mode, 0, *old_parent, old_parent_ino, {}, caller, false);
    HC_TRY(made, s.inodes.allocate(tx, s.quota, init));
    HC_TRYV(s.add_inherited(tx, made.first, *made.second, inherited, inherited_charge));
    HC_TRYV(s.add_entry(tx, old_parent_ino, *old_parent, old_name, made.first, init.mode));
  }
  if (moves && is_dir(sr)) reparent(tx, sr, new_parent_ino, *old_parent, *new_parent);
  touch_c(tx, sr, ts);
  touch_mc(tx, *old_parent, ts);
  if (moves) touch_mc(tx, *new_parent, ts);
  s.dedupe.record(tx, req, Mutation::kRename);
  if (dr) {
    // The replaced inode loses its name.
    if (is_dir(*dr)) {
      tx.set(dr->nlink, std::uint32_t{0});
      tx.set(new_parent->nlink, new_parent->nlink - 1);
    } else {
      if (dr->nlink > 1) s.quota.unreserve_inode(tx);
      tx.set(dr->nlink, dr->nlink - 1);
    }
    touch_c(tx, *dr, ts);
    s.settle(tx, dst_ino, *dr);
  }
  const mode_t dst_mode = dr ? dr->mode : 0;
  tx.commit();
  if (dr) s.finish(dst_ino, dst_generation);
  if (dr && replaced) *replaced = Unlinked{dst_ino, dst_generation, dst_mode};
  return success();
}

}  // namespace hostchanfs::shm
