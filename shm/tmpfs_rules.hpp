// Kernel tmpfs's rules that the store copies, in one place: what a program can observe
// (sizes, names, which bits a write drops, which times an operation sets, who owns a new
// inode). Every value here was first observed on a tmpfs (tests/shm, tests/fs).
#pragma once

#include <sys/stat.h>
#include <time.h>

#include <cstddef>
#include <cstring>
#include <cstdint>
#include <string_view>

#include "shm/persist/store_schema.hpp"
#include "shm/persist/tx.hpp"
#include "shm/store.hpp"

namespace hostchanfs::shm {

// A directory's size is 20 bytes per entry, counting "." and "..".
inline constexpr std::uint64_t kBogoDirentSize = 20;
inline constexpr std::uint64_t kEmptyDirSize = 2 * kBogoDirentSize;
// Symlink targets shorter than this live inside the inode; longer ones use a page.
inline constexpr std::size_t kShortSymlinkLen = 128;
inline constexpr bool is_long_symlink(std::size_t target_len) { return target_len >= kShortSymlinkLen; }

inline constexpr std::uint64_t pages_for(std::uint64_t bytes) { return (bytes + kPageSize - 1) / kPageSize; }

// A name that may become a directory entry.
Result<void> check_name(std::string_view name);

// setuid always, setgid only when group-executable: what tmpfs drops on an unprivileged
// write or truncate, on chown, and when the kernel asks (killpriv).
inline mode_t without_suid_sgid(mode_t mode) {
  mode &= ~S_ISUID;
  if (mode & S_IXGRP) mode &= ~S_ISGID;
  return mode;
}

using persist::store::InodeRecord;

// A new inode belongs to its caller, except under a setgid directory (BSD group
// semantics): the parent's group, and a new directory keeps the setgid bit. Sets uid, gid
// and mode of `r` (a record not yet in the region).
void set_new_owner(InodeRecord& r, mode_t mode, const InodeRecord& parent, const Caller& caller);

// --- times: which operation sets which is decided by the operations; these set them.
timespec now();
// Each in the tx that makes the change (a record in the region).
inline void set_time(persist::Tx& tx, std::int64_t& s, std::uint32_t& ns, const timespec& ts) {
  tx.set(s, static_cast<std::int64_t>(ts.tv_sec));
  tx.set(ns, static_cast<std::uint32_t>(ts.tv_nsec));
}
inline timespec get_time(std::int64_t s, std::uint32_t ns) {
  return timespec{static_cast<time_t>(s), static_cast<long>(ns)};
}
// The contents changed (data, entries): mtime and ctime (adjacent fields: two writes).
inline void touch_mc(persist::Tx& tx, InodeRecord& r, const timespec& ts) {
  static_assert(offsetof(InodeRecord, ctime_s) == offsetof(InodeRecord, mtime_s) + 8);
  static_assert(offsetof(InodeRecord, ctime_ns) == offsetof(InodeRecord, mtime_ns) + 4);
  const std::int64_t s[2] = {ts.tv_sec, ts.tv_sec};
  const std::uint32_t ns[2] = {static_cast<std::uint32_t>(ts.tv_nsec), static_cast<std::uint32_t>(ts.tv_nsec)};
  tx.write(&r.mtime_s, s, sizeof s);
  tx.write(&r.mtime_ns, ns, sizeof ns);
}
// Only the inode changed (links, attributes, xattrs): ctime.
inline void touch_c(persist::Tx& tx, InodeRecord& r, const timespec& ts) {
  set_time(tx, r.ctime_s, r.ctime_ns, ts);
}
// relatime, tmpfs's default: a read updates atime when atime is not after mtime or ctime,
// or is a day old or more (the kernel's relatime_need_update).
inline bool relatime_due(const InodeRecord& r, const timespec& ts) {
  auto at_or_after = [](std::int64_t s1, std::uint32_t ns1, std::int64_t s2, std::uint32_t ns2) {
    return s1 > s2 || (s1 == s2 && ns1 >= ns2);
  };
  if (at_or_after(r.mtime_s, r.mtime_ns, r.atime_s, r.atime_ns)) return true;
  if (at_or_after(r.ctime_s, r.ctime_ns, r.atime_s, r.atime_ns)) return true;
  return ts.tv_sec - r.atime_s >= 24 * 60 * 60;
}
// A new inode (a record not yet in the region): all three now.
inline void stamp_new(InodeRecord& r, const timespec& ts) {
  r.atime_s = r.mtime_s = r.ctime_s = ts.tv_sec;
  r.atime_ns = r.mtime_ns = r.ctime_ns = static_cast<std::uint32_t>(ts.tv_nsec);
}

}  // namespace hostchanfs::shm
