// InodeRec: one inode's slot in the fixed inode table at the start of the meta memfd, and
// the objects it owns in the managed segment. Persistent: part of kLayoutVersion.
//
// Lifetime of a slot (the rule every caller of InodeTable keeps):
//   - mode == 0 means the slot is free; (ino, generation) never names two inodes, because
//     `generation` is bumped each time the slot is freed.
//   - its charge (data pages, long-symlink and xattr pages, its inode count) goes back
//     when the last name and the last open handle are gone (nlink == 0, opens == 0), as
//     on tmpfs, once only (charge_released);
//   - the slot itself is freed only when, in addition, the kernel's lookup count is 0:
//     the kernel may still name the inode until it forgets it. The root is never freed.
//
// Which lock guards what (the locks are Store::Impl's, see store_impl.hpp):
//   nlink, parent, charge_released, dir's contents, the slot's liveness: the namespace lock
//     exclusive to change, shared to read;
//   the rest of the attributes, pages, xattrs, symlink: the inode's stripe lock (with the
//     namespace lock shared), or the namespace lock exclusive;
//   mode: written under the stripe lock, read without it through load_mode() (its type
//     bits never change; only liveness or the type is read unlocked);
//   lookups, opens: atomics, under the namespace lock shared at least.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <cstdint>

#include <boost/interprocess/containers/vector.hpp>
#include <boost/interprocess/offset_ptr.hpp>

#include "shm/directory.hpp"
#include "shm/file_pages.hpp"
#include "shm/segment.hpp"

namespace hostchanfs::shm {

// xattrs: few per inode, so a vector with linear search.
struct XattrRec {
  XattrRec(std::string_view n, std::string_view v, const Alloc<char>& a)
      : name(n.data(), n.size(), a), value(v.data(), v.size(), a) {}
  String name;
  String value;
};
using XattrList = bip::vector<XattrRec, Alloc<XattrRec>>;

struct InodeRec {
  std::uint64_t generation;
  std::uint32_t mode;
  std::uint32_t uid, gid;
  std::uint32_t nlink;
  std::uint64_t rdev;
  std::uint64_t size;
  std::uint64_t pages_held;   // quota pages shown in st_blocks: data, or a long symlink
  std::uint64_t xattr_bytes;  // charged to the quota in whole pages
  std::int64_t atime_s, mtime_s, ctime_s;
  std::uint32_t atime_ns, mtime_ns, ctime_ns;
  std::uint32_t charge_released;        // 1: pages and inode count given back
  std::uint64_t parent;                 // directories: the ".." inode
  std::atomic<std::uint64_t> lookups;   // the kernel's lookup count
  std::atomic<std::uint32_t> opens;     // open handles
  bip::offset_ptr<Directory> dir;       // directories
  bip::offset_ptr<PageTable> pages;     // regular files
  bip::offset_ptr<String> symlink;      // symlinks: the target
  bip::offset_ptr<XattrList> xattrs;    // made by the first setxattr
};

// See "mode" above: a relaxed atomic access, so no read races with setattr's write.
inline mode_t load_mode(const InodeRec& r) {
  return std::atomic_ref<std::uint32_t>(const_cast<std::uint32_t&>(r.mode))
      .load(std::memory_order_relaxed);
}
inline void store_mode(InodeRec& r, mode_t mode) {
  std::atomic_ref<std::uint32_t>(r.mode).store(mode, std::memory_order_relaxed);
}
inline bool is_dir(const InodeRec& r) { return S_ISDIR(load_mode(r)); }
inline bool is_reg(const InodeRec& r) { return S_ISREG(load_mode(r)); }

}  // namespace hostchanfs::shm
