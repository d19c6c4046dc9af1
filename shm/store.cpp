// STORE-IMPL-READY
#include "shm/store.hpp"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <cstring>
#include <mutex>
#include <new>
#include <optional>
#include <shared_mutex>
#include <vector>

#include <boost/container/small_vector.hpp>

#include "shm/layout.hpp"
#include "sys/mapping.hpp"
#include "sys/memfd.hpp"

namespace hostchanfs::shm {

namespace L = layout;
using L::InodeRec;

namespace {

// tmpfs reports a directory's size as 20 bytes per entry, counting "." and "..".
constexpr std::uint64_t kBogoDirentSize = 20;
// tmpfs keeps symlink targets shorter than this inside the inode (no page used).
constexpr std::size_t kShortSymlinkLen = 128;
// Per-xattr bookkeeping charged with its name and value, so many tiny xattrs cannot grow
// the segment past what the quota pays for.
constexpr std::uint64_t kXattrOverhead = 64;
constexpr std::size_t kStripes = 256;

// A position in a list of source buffers, consumed in order.
class IovCursor {
 public:
  explicit IovCursor(std::span<const iovec> iov) : iov_(iov) {}
  // Append the next `len` bytes (fewer if the buffers end first) to `out` as slices.
  template <class Out>
  void take(std::size_t len, Out& out) {
    while (len > 0 && i_ < iov_.size()) {
      std::size_t n = std::min(len, iov_[i_].iov_len - off_);
      if (n) out.push_back(iovec{static_cast<char*>(iov_[i_].iov_base) + off_, n});
      len -= n;
      off_ += n;
      if (off_ == iov_[i_].iov_len) {
        ++i_;
        off_ = 0;
      }
    }
  }

 private:
  std::span<const iovec> iov_;
  std::size_t i_ = 0, off_ = 0;
};

std::uint64_t round_up(std::uint64_t v, std::uint64_t to) { return (v + to - 1) / to * to; }
std::uint64_t pages_for(std::uint64_t bytes) { return (bytes + kPageSize - 1) / kPageSize; }

timespec now() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return ts;
}
void set_time(std::int64_t& s, std::uint32_t& ns, const timespec& ts) {
  s = ts.tv_sec;
  ns = static_cast<std::uint32_t>(ts.tv_nsec);
}
timespec get_time(std::int64_t s, std::uint32_t ns) {
  return timespec{static_cast<time_t>(s), static_cast<long>(ns)};
}
void touch_mc(InodeRec& r, const timespec& ts) {
  set_time(r.mtime_s, r.mtime_ns, ts);
  set_time(r.ctime_s, r.ctime_ns, ts);
}
void touch_c(InodeRec& r, const timespec& ts) { set_time(r.ctime_s, r.ctime_ns, ts); }

// An inode's mode is read without its stripe lock wherever only the slot's liveness or the
// type (which never changes) matters, while setattr and write change the permission bits
// under the stripe lock: those reads and writes go through atomic_ref (no data race).
mode_t load_mode(const InodeRec& r) {
  return std::atomic_ref<std::uint32_t>(const_cast<std::uint32_t&>(r.mode))
      .load(std::memory_order_relaxed);
}
void store_mode(InodeRec& r, mode_t mode) {
  std::atomic_ref<std::uint32_t>(r.mode).store(mode, std::memory_order_relaxed);
}
// setuid always, setgid only when group-executable: what tmpfs drops on an unprivileged
// write or truncate and on chown.
mode_t without_suid_sgid(mode_t mode) {
  mode &= ~S_ISUID;
  if (mode & S_IXGRP) mode &= ~S_ISGID;
  return mode;
}

bool is_dir(const InodeRec& r) { return S_ISDIR(load_mode(r)); }
bool is_reg(const InodeRec& r) { return S_ISREG(load_mode(r)); }

Result<void> check_name(std::string_view name) {
  if (name.empty()) return std::errc::no_such_file_or_directory;
  if (name.size() > kNameMax) return std::errc::filename_too_long;
  if (name.find('/') != std::string_view::npos) return std::errc::invalid_argument;
  return success();
}

// Undo a step unless dismissed: keeps multi-step operations all-or-nothing.
template <class F>
class Rollback {
 public:
  explicit Rollback(F f) : f_(std::move(f)) {}
  ~Rollback() {
    if (armed_) f_();
  }
  void dismiss() { armed_ = false; }
  Rollback(const Rollback&) = delete;
  Rollback& operator=(const Rollback&) = delete;

 private:
  F f_;
  bool armed_ = true;
};

}  // namespace

struct stat Attr::to_stat() const noexcept {
  struct stat st {};
  st.st_ino = ino;
  st.st_mode = mode;
  st.st_nlink = nlink;
  st.st_uid = uid;
  st.st_gid = gid;
  st.st_rdev = rdev;
  st.st_size = static_cast<off_t>(size);
  st.st_blksize = kPageSize;
  st.st_blocks = static_cast<blkcnt_t>(blocks);
  st.st_atim = atime;
  st.st_mtim = mtime;
  st.st_ctim = ctime;
  return st;
}

// Locking (process-local; a re-attaching daemon starts with fresh locks):
//   ns_mutex_   exclusive: every change of the namespace (create, link, unlink, rename,
//               freeing an inode slot); shared: everything else.
//   stripes_    per-inode (ino % kStripes) state: attributes, page table, xattrs. Taken
//               after ns_mutex_, one at a time (never two stripes at once).
//   pool_mutex_ the page pool's free list; innermost.
// Directory contents change only under ns_mutex_ exclusive, so readers holding it
// shared may walk them without a stripe. The quota and inode counters are atomics.
//
// File data moves through the data memfd with pread(2)/pwrite(2), never through a mapping
// of it: the daemon then holds no page-table entries for file data. A fresh page costs
// the kernel's allocation only, as on tmpfs, instead of a fault per 4 KiB (about 5 us a
// page on a paravirtualized guest, where a first touch through a mapping traps; measured
// 1.5 ms per MiB written against 0.2 ms), and punching a page out zaps no mapping and
// flushes no TLB.
struct Store::Impl {
  UniqueFd meta_fd, data_fd;
  Mapping meta;
  L::Header* header = nullptr;
  InodeRec* table = nullptr;
  std::unique_ptr<L::Segment> segment;
  L::SlotPool* page_pool = nullptr;
  L::SlotPool* inode_pool = nullptr;

  mutable std::shared_mutex ns_mutex;
  mutable std::array<std::shared_mutex, kStripes> stripes;
  std::mutex pool_mutex;

  // Own both regions, the meta one mapped whole (create_in and attach share this).
  static Result<std::unique_ptr<Impl>> map_regions(UniqueFd meta_fd, std::uint64_t meta_size,
                                                   UniqueFd data_fd) {
    auto impl = std::make_unique<Impl>();
    HC_TRY(meta_map, Mapping::map_shared(meta_fd.get(), meta_size));
    impl->meta = std::move(meta_map);
    impl->meta_fd = std::move(meta_fd);
    impl->data_fd = std::move(data_fd);
    return impl;
  }
  // Point at the header and the inode table of the meta region (the header's offsets).
  void use_header() {
    header = reinterpret_cast<L::Header*>(meta.data());
    table = reinterpret_cast<InodeRec*>(meta.data() + header->table_offset);
  }

  std::shared_mutex& stripe(Ino ino) const { return stripes[ino % kStripes]; }
  // Where a page lives in the data memfd.
  static off_t data_offset(std::uint32_t page_no) {
    return static_cast<off_t>(std::uint64_t{page_no & ~L::kUnwritten} * kPageSize);
  }
  // The last page of the run that starts at `it`: file pages that follow each other, up to
  // byte `end` of the file, whose data pages follow each other too (one pread/pwrite).
  template <class It>
  static It last_of_run(It it, It pages_end, std::uint64_t end) {
    for (auto next = std::next(it); next != pages_end && next->first == it->first + 1 &&
                                    next->first * kPageSize < end &&
                                    data_offset(next->second) == data_offset(it->second) + off_t{kPageSize};
         ++next)
      it = next;
    return it;
  }
  // Copy all of `iov` into the data region at `at`, or fail with the errno. Consumes
  // `iov` (a short pwritev resumes mid-buffer).
  Result<void> write_data(std::span<iovec> iov, off_t at) const {
    std::size_t k = 0;
    while (k < iov.size()) {
      ssize_t n = ::pwritev(data_fd.get(), iov.data() + k,
                            static_cast<int>(std::min<std::size_t>(iov.size() - k, IOV_MAX)), at);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return n < 0 ? last_errc() : std::errc::io_error;
      at += n;
      auto left = static_cast<std::size_t>(n);  // skip what went, resume mid-buffer
      while (k < iov.size() && left >= iov[k].iov_len) left -= iov[k++].iov_len;
      if (left) {
        iov[k].iov_base = static_cast<char*>(iov[k].iov_base) + left;
        iov[k].iov_len -= left;
      }
    }
    return success();
  }
  // Copy `len` bytes of the data region at `at` into `out`, or fail with the errno.
  Result<void> read_data(std::byte* out, std::size_t len, off_t at) const {
    while (len > 0) {
      ssize_t n = ::pread(data_fd.get(), out, len, at);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return n < 0 ? last_errc() : std::errc::io_error;
      out += n;
      len -= static_cast<std::size_t>(n);
      at += n;
    }
    return success();
  }
  template <class T>
  L::Alloc<T> alloc() const {
    return L::Alloc<T>(segment->get_segment_manager());
  }

  // --- inode table ---
  InodeRec* rec(Ino ino) const {
    if (ino == 0 || ino > header->max_inodes + 1) return nullptr;
    InodeRec* r = &table[ino];
    return load_mode(*r) == 0 ? nullptr : r;
  }
  Result<InodeRec*> get(Ino ino) const {
    InodeRec* r = rec(ino);
    if (!r) return static_cast<std::errc>(ESTALE);
    return r;
  }
  Attr attr_of(Ino ino, const InodeRec& r) const {
    Attr a;
    a.ino = ino;
    a.generation = r.generation;
    a.mode = r.mode;
    a.nlink = r.nlink;
    a.uid = r.uid;
    a.gid = r.gid;
    a.rdev = r.rdev;
    a.size = r.size;
    a.blocks = r.pages_held * (kPageSize / 512);
    a.atime = get_time(r.atime_s, r.atime_ns);
    a.mtime = get_time(r.mtime_s, r.mtime_ns);
    a.ctime = get_time(r.ctime_s, r.ctime_ns);
    return a;
  }
  Attr locked_attr(Ino ino, const InodeRec& r) const {
    std::shared_lock lk(stripe(ino));
    return attr_of(ino, r);
  }

  // --- quota ---
  // Reserve up to `want` pages (exactly `want` unless partial), return how many.
  std::uint64_t reserve_pages(std::uint64_t want, bool partial) {
    auto& used = header->pages_used;
    std::uint64_t cur = used.load(std::memory_order_relaxed);
    for (;;) {
      std::uint64_t avail = header->quota_pages - std::min(cur, header->quota_pages);
      std::uint64_t take = partial ? std::min(want, avail) : (avail >= want ? want : 0);
      if (take == 0) return 0;
      if (used.compare_exchange_weak(cur, cur + take, std::memory_order_relaxed)) return take;
    }
  }
  void unreserve_pages(std::uint64_t n) {
    if (n) header->pages_used.fetch_sub(n, std::memory_order_relaxed);
  }
  bool reserve_inode() {
    auto& used = header->inodes_used;
    std::uint64_t cur = used.load(std::memory_order_relaxed);
    do {
      if (cur >= header->max_inodes) return false;
    } while (!used.compare_exchange_weak(cur, cur + 1, std::memory_order_relaxed));
    return true;
  }
  void unreserve_inode() { header->inodes_used.fetch_sub(1, std::memory_order_relaxed); }

  // --- data pages (quota already reserved by the caller) ---
  std::uint32_t take_page() {
    std::lock_guard lk(pool_mutex);
    std::uint32_t p = 0;
    if (!page_pool->take(p)) std::abort();  // quota reserved => a page exists
    return p;
  }
  // Give pages back: punch them out of the memfd first (memory returns to the system at
  // once, and a page taken later reads as zeros), then return them to the free list.
  void free_pages(std::vector<std::uint32_t>& pages) {
    if (pages.empty()) return;
    for (auto& p : pages) p &= ~L::kUnwritten;
    std::sort(pages.begin(), pages.end());
    std::size_t i = 0;
    while (i < pages.size()) {
      std::size_t j = i + 1;
      while (j < pages.size() && pages[j] == pages[j - 1] + 1) ++j;
      ::fallocate(data_fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  static_cast<off_t>(std::uint64_t{pages[i]} * kPageSize),
                  static_cast<off_t>((j - i) * kPageSize));
      i = j;
    }
    {
      // Highest first: the pool is a stack, so the next writes take these pages back in
      // ascending order, and a file's pages follow each other in the data region (one
      // pwrite/pread per run, not per page).
      std::lock_guard lk(pool_mutex);
      for (auto p = pages.rbegin(); p != pages.rend(); ++p) page_pool->give(*p);
    }
    unreserve_pages(pages.size());
  }
  // Drop every page of `r` with file index >= first_index.
  void drop_pages_from(InodeRec& r, std::uint64_t first_index) {
    if (!r.pages) return;
    auto& pt = *r.pages;
    auto it = pt.lower_bound(first_index);
    std::vector<std::uint32_t> freed;
    freed.reserve(static_cast<std::size_t>(pt.end() - it));
    for (auto j = it; j != pt.end(); ++j) freed.push_back(j->second);
    pt.erase(it, pt.end());
    r.pages_held -= freed.size();
    free_pages(freed);
  }
  void drop_page_range(InodeRec& r, std::uint64_t first, std::uint64_t end) {
    if (!r.pages || first >= end) return;
    auto& pt = *r.pages;
    auto lo = pt.lower_bound(first);
    auto hi = pt.lower_bound(end);
    std::vector<std::uint32_t> freed;
    for (auto j = lo; j != hi; ++j) freed.push_back(j->second);
    pt.erase(lo, hi);
    r.pages_held -= freed.size();
    free_pages(freed);
  }
  // Zero bytes [from, to) of a page in place: a punch inside one page of a memfd zeroes
  // those bytes and keeps the page (like free_pages' punches, it cannot fail on a range
  // inside the region).
  void zero_in_page(InodeRec& r, std::uint64_t index, std::uint64_t from, std::uint64_t to) {
    if (!r.pages || from >= to) return;
    auto it = r.pages->find(index);
    if (it != r.pages->end())
      ::fallocate(data_fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  data_offset(it->second) + static_cast<off_t>(from), static_cast<off_t>(to - from));
  }

  // --- inode life ---
  Result<std::pair<Ino, InodeRec*>> new_inode(mode_t mode, const InodeRec& parent,
                                               const Caller& caller) {
    if (!reserve_inode()) return std::errc::no_space_on_device;
    std::uint32_t slot = 0;
    if (!inode_pool->take(slot)) {
      unreserve_inode();
      return std::errc::no_space_on_device;
    }
    Ino ino = slot + 2;  // slot 0 -> ino 2; ino 1 is the root, ino 0 is invalid
    InodeRec* r = &table[ino];
    std::uint64_t gen = r->generation;
    new (r) InodeRec{};
    r->generation = gen;
    r->uid = caller.uid;
    r->gid = caller.gid;
    // BSD group semantics under a setgid directory: the parent's group, and a new
    // directory keeps the setgid bit.
    if (parent.mode & S_ISGID) {
      r->gid = parent.gid;
      if (S_ISDIR(mode)) mode |= S_ISGID;
    }
    r->mode = mode;
    r->nlink = 1;
    timespec ts = now();
    set_time(r->atime_s, r->atime_ns, ts);
    touch_mc(*r, ts);
    return std::pair{ino, r};
  }
  // Release a slot: its pages, its segment objects, its quota and its inode count.
  void free_inode(Ino ino, InodeRec& r) {
    release_charge(r);
    // Pages or xattrs gained after the charge went (a write or setxattr on an unlinked
    // inode that only the kernel's lookups kept) go back too, or they would leak.
    drop_pages_from(r, 0);
    unreserve_pages(r.pages_held + pages_for(r.xattr_bytes));
    if (r.pages) segment->destroy_ptr(r.pages.get());
    if (r.dir) segment->destroy_ptr(r.dir.get());
    if (r.symlink) segment->destroy_ptr(r.symlink.get());
    if (r.xattrs) segment->destroy_ptr(r.xattrs.get());
    std::uint64_t gen = r.generation + 1;
    r.~InodeRec();
    std::memset(static_cast<void*>(&r), 0, sizeof r);
    r.generation = gen;
    inode_pool->give(static_cast<std::uint32_t>(ino - 2));
  }
  // Give back what an inode costs (its pages, long-symlink and xattr pages, its inode
  // count), once only. tmpfs does this when the last name and the last open file go; the
  // kernel's FORGET for a FUSE inode can come much later, and statfs must not wait for it.
  void release_charge(InodeRec& r) {
    if (r.charge_released) return;
    drop_pages_from(r, 0);
    unreserve_pages(r.pages_held + pages_for(r.xattr_bytes));  // long symlink, xattrs
    r.pages_held = 0;
    r.xattr_bytes = 0;
    unreserve_inode();
    r.charge_released = 1;
  }
  // Called under ns exclusive after a change that may have dropped the last reference:
  // with no name and no handle left the charge goes; the slot goes when the kernel's
  // lookups are gone too.
  void maybe_free(Ino ino, InodeRec& r) {
    if (ino == kRootIno || r.nlink != 0 || r.opens.load() != 0) return;
    if (r.lookups.load() == 0) {
      free_inode(ino, r);
    } else {
      release_charge(r);
    }
  }
  // Called with no lock held: free `ino` if it is (still) unreferenced.
  void free_if_unreferenced(Ino ino, std::uint64_t generation) {
    std::unique_lock lk(ns_mutex);
    InodeRec* r = rec(ino);
    if (r && r->generation == generation) maybe_free(ino, *r);
  }

  // --- directories ---
  Result<InodeRec*> dir_of(Ino ino) const {
    HC_TRY(r, get(ino));
    if (!is_dir(*r)) return std::errc::not_a_directory;
    return r;
  }
  // A directory that may receive a new entry: not one already removed (a removed directory
  // the kernel still holds, e.g. a cwd, must stay empty, or freeing it would leak entries).
  Result<InodeRec*> live_dir_of(Ino ino) const {
    HC_TRY(r, dir_of(ino));
    if (r->nlink == 0) return std::errc::no_such_file_or_directory;
    return r;
  }
  const L::DirEntryRec* find_entry(const InodeRec& dir, std::string_view name) const {
    auto& idx = dir.dir->entries.get<L::ByName>();
    auto it = idx.find(name);
    return it == idx.end() ? nullptr : &*it;
  }
  void add_entry(Ino dir_ino, InodeRec& dir, std::string_view name, Ino ino, mode_t mode) {
    auto& d = *dir.dir;
    d.entries.emplace(name, ino, d.next_cookie, mode & S_IFMT, alloc<char>());
    ++d.next_cookie;
    dir.size += kBogoDirentSize;
    (void)dir_ino;
  }
  void remove_entry(InodeRec& dir, std::string_view name) {
    auto& idx = dir.dir->entries.get<L::ByName>();
    auto it = idx.find(name);
    if (it != idx.end()) {
      idx.erase(it);
      dir.size -= kBogoDirentSize;
    }
  }
  // Is `ancestor` on the path from `ino` up to the root?
  bool is_ancestor(Ino ancestor, Ino ino) const {
    while (true) {
      if (ino == ancestor) return true;
      if (ino == kRootIno) return false;
      const InodeRec* r = rec(ino);
      if (!r) return false;
      ino = r->parent;
    }
  }

  // Link a freshly made inode into parent; all or nothing.
  Result<Attr> finish_create(Ino parent_ino, InodeRec& parent, std::string_view name, Ino ino,
                             InodeRec& r) {
    Rollback undo([&] {
      r.nlink = 0;
      free_inode(ino, r);
    });
    try {
      if (S_ISDIR(r.mode)) {
        r.dir = segment->construct<L::Directory>(boost::interprocess::anonymous_instance)(
            alloc<L::DirEntryRec>());
        r.nlink = 2;
        r.size = 2 * kBogoDirentSize;
        r.parent = parent_ino;
      } else if (S_ISREG(r.mode)) {
        r.pages = segment->construct<L::PageTable>(boost::interprocess::anonymous_instance)(
            alloc<L::PageMapValue>());
      }
      add_entry(parent_ino, parent, name, ino, r.mode);
    } catch (const boost::interprocess::bad_alloc&) {
      return std::errc::no_space_on_device;
    }
    undo.dismiss();
    if (S_ISDIR(r.mode)) ++parent.nlink;
    touch_mc(parent, get_time(r.ctime_s, r.ctime_ns));
    r.lookups.store(1);
    return attr_of(ino, r);
  }

  Result<Attr> make_node(Ino parent_ino, std::string_view name, mode_t mode, dev_t rdev,
                         std::string_view symlink_target, const Caller& caller) {
    HC_TRYV(check_name(name));
    std::unique_lock lk(ns_mutex);
    HC_TRY(parent, live_dir_of(parent_ino));
    if (find_entry(*parent, name)) return std::errc::file_exists;
    bool long_link = S_ISLNK(mode) && symlink_target.size() >= kShortSymlinkLen;
    if (long_link && !reserve_pages(1, false)) return std::errc::no_space_on_device;
    Rollback unreserve([&] {
      if (long_link) unreserve_pages(1);
    });
    HC_TRY(made, new_inode(mode, *parent, caller));
    auto [ino, r] = made;
    r->rdev = rdev;
    if (S_ISLNK(mode)) {
      try {
        r->symlink = segment->construct<L::String>(boost::interprocess::anonymous_instance)(
            symlink_target.data(), symlink_target.size(), alloc<char>());
      } catch (const boost::interprocess::bad_alloc&) {
        r->nlink = 0;
        free_inode(ino, *r);
        return std::errc::no_space_on_device;
      }
      r->size = symlink_target.size();
      r->pages_held = long_link ? 1 : 0;
    }
    unreserve.dismiss();
    return finish_create(parent_ino, *parent, name, ino, *r);
  }

  // --- xattr quota: charge the change in whole pages, all or nothing ---
  Result<void> recharge_xattrs(InodeRec& r, std::uint64_t new_bytes) {
    std::uint64_t old_pages = pages_for(r.xattr_bytes), new_pages = pages_for(new_bytes);
    if (new_pages > old_pages && !reserve_pages(new_pages - old_pages, false))
      return std::errc::no_space_on_device;
    if (new_pages < old_pages) unreserve_pages(old_pages - new_pages);
    r.xattr_bytes = new_bytes;
    return success();
  }
};

// ---------------------------------------------------------------------------------------

std::uint64_t Store::default_max_inodes(std::uint64_t size_bytes) {
  return std::max<std::uint64_t>(1024, pages_for(size_bytes));
}

std::uint64_t Store::meta_region_size(std::uint64_t quota_pages, std::uint64_t max_inodes) {
  std::uint64_t table = round_up((max_inodes + 2) * sizeof(InodeRec), kPageSize);
  // Per inode: a directory entry with a name of up to 255 bytes and the index nodes, the
  // inode's own container objects; per quota page: a page-table slot (x2 for growth) and
  // a free-list slot; plus the quota again for xattrs and long symlink targets, which are
  // charged to the quota. Sparse: only what is used costs memory.
  std::uint64_t segment = (4ull << 20) + max_inodes * 1024 + quota_pages * 48 +
                          quota_pages * kPageSize * 2;
  return kPageSize + table + round_up(segment, kPageSize);
}

Result<Usage> peek_usage(int meta_fd) {
  HC_TRY(size, fd_size(meta_fd));
  if (size < kPageSize) return std::errc::protocol_error;
  HC_TRY(map, Mapping::map_shared(meta_fd, kPageSize));
  const auto* h = reinterpret_cast<const L::Header*>(map.data());
  if (std::memcmp(h->magic, L::kMagic, sizeof h->magic) != 0 || h->version != L::kLayoutVersion)
    return std::errc::protocol_error;
  Usage u;
  u.pages_used = std::min(h->pages_used.load(), h->quota_pages);
  u.quota_pages = h->quota_pages;
  u.inodes_used = std::min(h->inodes_used.load(), h->max_inodes);
  u.max_inodes = h->max_inodes;
  return u;
}

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::create(const StoreOptions& opts) {
  HC_TRY(meta, make_memfd("hostchanfs-meta", 0));
  HC_TRY(data, make_memfd("hostchanfs-data", 0));
  return create_in(opts, std::move(meta), std::move(data));
}

Result<std::unique_ptr<Store>> Store::create_in(const StoreOptions& opts, UniqueFd meta_fd,
                                                UniqueFd data_fd) {
  if (opts.size_bytes < kPageSize) return std::errc::invalid_argument;
  std::uint64_t quota_pages = pages_for(opts.size_bytes);
  if (quota_pages >= L::kUnwritten) return std::errc::file_too_large;
  std::uint64_t max_inodes = opts.max_inodes ? opts.max_inodes : default_max_inodes(opts.size_bytes);
  if (max_inodes >= (1ull << 31)) return std::errc::invalid_argument;
  std::uint64_t meta_size = meta_region_size(quota_pages, max_inodes);
  if (::ftruncate(meta_fd.get(), static_cast<off_t>(meta_size)) < 0) return last_errc();
  if (::ftruncate(data_fd.get(), static_cast<off_t>(quota_pages * kPageSize)) < 0)
    return last_errc();

  HC_TRY(impl, Impl::map_regions(std::move(meta_fd), meta_size, std::move(data_fd)));

  auto* h = new (impl->meta.data()) L::Header{};
  h->version = L::kLayoutVersion;
  h->inode_rec_size = sizeof(InodeRec);
  h->quota_pages = quota_pages;
  h->max_inodes = max_inodes;
  h->table_offset = kPageSize;
  h->segment_offset = kPageSize + round_up((max_inodes + 2) * sizeof(InodeRec), kPageSize);
  h->segment_size = meta_size - h->segment_offset;
  impl->use_header();
  try {
    impl->segment = std::make_unique<L::Segment>(boost::interprocess::create_only,
                                                 impl->meta.data() + h->segment_offset,
                                                 h->segment_size);
    impl->page_pool = impl->segment->construct<L::SlotPool>(L::kPagePoolName)(
        quota_pages, impl->alloc<std::uint32_t>());
    impl->inode_pool = impl->segment->construct<L::SlotPool>(L::kInodePoolName)(
        max_inodes, impl->alloc<std::uint32_t>());
  } catch (const boost::interprocess::interprocess_exception&) {
    return std::errc::not_enough_memory;
  }

  InodeRec* root = &impl->table[kRootIno];
  new (root) InodeRec{};
  root->mode = S_IFDIR | (opts.root_mode & 07777);
  root->uid = opts.root_uid;
  root->gid = opts.root_gid;
  root->nlink = 2;
  root->size = 2 * kBogoDirentSize;
  root->parent = kRootIno;
  timespec ts = now();
  set_time(root->atime_s, root->atime_ns, ts);
  touch_mc(*root, ts);
  root->dir = impl->segment->construct<L::Directory>(boost::interprocess::anonymous_instance)(
      impl->alloc<L::DirEntryRec>());
  h->inodes_used = 1;  // tmpfs counts its root
  // The magic goes last: a half-formatted region is never mistaken for a store.
  std::memcpy(h->magic, L::kMagic, sizeof h->magic);
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Result<std::unique_ptr<Store>> Store::attach(UniqueFd meta_fd, UniqueFd data_fd) {
  HC_TRY(meta_size, fd_size(meta_fd.get()));
  if (meta_size < kPageSize) return std::errc::protocol_error;
  HC_TRY(data_size, fd_size(data_fd.get()));
  if (data_size == 0) return std::errc::protocol_error;
  HC_TRY(impl, Impl::map_regions(std::move(meta_fd), meta_size, std::move(data_fd)));
  const L::Header* h = reinterpret_cast<const L::Header*>(impl->meta.data());
  if (std::memcmp(h->magic, L::kMagic, sizeof h->magic) != 0 || h->version != L::kLayoutVersion ||
      h->inode_rec_size != sizeof(InodeRec) ||
      h->segment_offset + h->segment_size != meta_size ||
      data_size != h->quota_pages * kPageSize)
    return std::errc::protocol_error;
  impl->use_header();
  try {
    impl->segment = std::make_unique<L::Segment>(boost::interprocess::open_only,
                                                 impl->meta.data() + h->segment_offset,
                                                 h->segment_size);
  } catch (const boost::interprocess::interprocess_exception&) {
    return std::errc::protocol_error;
  }
  impl->page_pool = impl->segment->find<L::SlotPool>(L::kPagePoolName).first;
  impl->inode_pool = impl->segment->find<L::SlotPool>(L::kInodePoolName).first;
  if (!impl->page_pool || !impl->inode_pool) return std::errc::protocol_error;
  // The kernel that held lookups and handles is gone with the old daemon... unless the
  // FUSE connection survives; the caller decides. Counts are kept as they are.
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

// --- names ------------------------------------------------------------------------------

Result<Attr> Store::lookup(Ino parent_ino, std::string_view name) {
  if (name.size() > kNameMax) return std::errc::filename_too_long;
  std::shared_lock lk(impl_->ns_mutex);
  HC_TRY(parent, impl_->dir_of(parent_ino));
  Ino ino = 0;
  if (name == ".") {
    ino = parent_ino;
  } else if (name == "..") {
    ino = parent->parent;
  } else {
    const L::DirEntryRec* e = impl_->find_entry(*parent, name);
    if (!e) return std::errc::no_such_file_or_directory;
    ino = e->ino;
  }
  HC_TRY(r, impl_->get(ino));
  r->lookups.fetch_add(1);
  return impl_->locked_attr(ino, *r);
}

void Store::forget(Ino ino, std::uint64_t nlookup) {
  // The root is never freed, and the kernel's count for it starts at one that no reply of
  // ours counted: a forget of the root must not trip the underflow check below.
  if (ino == kRootIno) return;
  std::uint64_t generation = 0;
  {
    std::shared_lock lk(impl_->ns_mutex);
    InodeRec* r = impl_->rec(ino);
    if (!r) return;
    std::uint64_t before = r->lookups.fetch_sub(nlookup);
    if (before < nlookup) std::abort();  // the kernel forgot more than it looked up
    if (before != nlookup) return;
    generation = r->generation;
  }
  impl_->free_if_unreferenced(ino, generation);
}

Result<Attr> Store::getattr(Ino ino) {
  std::shared_lock lk(impl_->ns_mutex);
  HC_TRY(r, impl_->get(ino));
  return impl_->locked_attr(ino, *r);
}

Result<Attr> Store::setattr(Ino ino, const AttrChange& c, const Caller& caller) {
  (void)caller;
  std::shared_lock lk(impl_->ns_mutex);
  HC_TRY(r, impl_->get(ino));
  std::unique_lock ilk(impl_->stripe(ino));
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
      impl_->drop_pages_from(*r, pages_for(nsize));
      if (nsize % kPageSize)
        impl_->zero_in_page(*r, nsize / kPageSize, nsize % kPageSize, kPageSize);
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
  auto apply = [&](const TimeChange& t, std::int64_t& s, std::uint32_t& ns) {
    if (t.kind == TimeChange::Kind::kNow) set_time(s, ns, ts);
    if (t.kind == TimeChange::Kind::kSet) set_time(s, ns, t.value);
  };
  apply(c.atime, r->atime_s, r->atime_ns);
  apply(c.mtime, r->mtime_s, r->mtime_ns);
  set_time(r->ctime_s, r->ctime_ns, c.ctime ? *c.ctime : ts);
  return impl_->attr_of(ino, *r);
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
  return impl_->make_node(parent, name, mode, rdev, {}, caller);
}

Result<Attr> Store::mkdir(Ino parent, std::string_view name, mode_t mode, const Caller& caller) {
  return impl_->make_node(parent, name, S_IFDIR | (mode & 07777), 0, {}, caller);
}

Result<Attr> Store::symlink(Ino parent, std::string_view name, std::string_view target,
                            const Caller& caller) {
  if (target.empty()) return std::errc::no_such_file_or_directory;
  if (target.size() > kSymlinkMax) return std::errc::filename_too_long;
  return impl_->make_node(parent, name, S_IFLNK | 0777, 0, target, caller);
}

Result<std::string> Store::readlink(Ino ino) {
  std::shared_lock lk(impl_->ns_mutex);
  HC_TRY(r, impl_->get(ino));
  if (!S_ISLNK(load_mode(*r))) return std::errc::invalid_argument;
  return std::string(L::view(*r->symlink));
}

Result<Attr> Store::link(Ino ino, Ino new_parent, std::string_view new_name) {
  HC_TRYV(check_name(new_name));
  std::unique_lock lk(impl_->ns_mutex);
  HC_TRY(r, impl_->get(ino));
  if (is_dir(*r)) return std::errc::operation_not_permitted;
  HC_TRY(parent, impl_->live_dir_of(new_parent));
  if (impl_->find_entry(*parent, new_name)) return std::errc::file_exists;
  if (r->nlink == 0) return std::errc::no_such_file_or_directory;
  // tmpfs charges every hard link as an inode.
  if (!impl_->reserve_inode()) return std::errc::no_space_on_device;
  try {
    impl_->add_entry(new_parent, *parent, new_name, ino, r->mode);
  } catch (const boost::interprocess::bad_alloc&) {
    impl_->unreserve_inode();
    return std::errc::no_space_on_device;
  }
  ++r->nlink;
  timespec ts = now();
  touch_c(*r, ts);
  touch_mc(*parent, ts);
  r->lookups.fetch_add(1);
  return impl_->attr_of(ino, *r);
}

Result<void> Store::unlink(Ino parent_ino, std::string_view name) {
  HC_TRYV(check_name(name));
  std::unique_lock lk(impl_->ns_mutex);
  HC_TRY(parent, impl_->dir_of(parent_ino));
  const L::DirEntryRec* e = impl_->find_entry(*parent, name);
  if (!e) return std::errc::no_such_file_or_directory;
  Ino ino = e->ino;
  HC_TRY(r, impl_->get(ino));
  if (is_dir(*r)) return std::errc::is_a_directory;
  impl_->remove_entry(*parent, name);
  // An extra hard link gives its inode charge back now; the last one when freed.
  if (r->nlink > 1) impl_->unreserve_inode();
  --r->nlink;
  timespec ts = now();
  touch_c(*r, ts);
  touch_mc(*parent, ts);
  impl_->maybe_free(ino, *r);
  return success();
}

Result<void> Store::rmdir(Ino parent_ino, std::string_view name) {
  HC_TRYV(check_name(name));
  if (name == ".") return std::errc::invalid_argument;
  if (name == "..") return std::errc::directory_not_empty;
  std::unique_lock lk(impl_->ns_mutex);
  HC_TRY(parent, impl_->dir_of(parent_ino));
  const L::DirEntryRec* e = impl_->find_entry(*parent, name);
  if (!e) return std::errc::no_such_file_or_directory;
  Ino ino = e->ino;
  HC_TRY(r, impl_->get(ino));
  if (!is_dir(*r)) return std::errc::not_a_directory;
  if (!r->dir->entries.empty()) return std::errc::directory_not_empty;
  impl_->remove_entry(*parent, name);
  --parent->nlink;
  r->nlink = 0;
  timespec ts = now();
  touch_c(*r, ts);
  touch_mc(*parent, ts);
  impl_->maybe_free(ino, *r);
  return success();
}

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
  const L::DirEntryRec* src = s.find_entry(*old_parent, old_name);
  if (!src) return std::errc::no_such_file_or_directory;
  const L::DirEntryRec* dst = s.find_entry(*new_parent, new_name);
  Ino src_ino = src->ino;
  HC_TRY(sr, s.get(src_ino));
  Ino dst_ino = dst ? dst->ino : 0;
  InodeRec* dr = dst ? s.rec(dst_ino) : nullptr;
  timespec ts = now();

  if (flags & RENAME_EXCHANGE) {
    if (!dst) return std::errc::no_such_file_or_directory;
    if (src_ino == dst_ino) return success();
    // Neither may end up inside itself.
    if (is_dir(*sr) && s.is_ancestor(src_ino, new_parent_ino)) return std::errc::invalid_argument;
    if (is_dir(*dr) && s.is_ancestor(dst_ino, old_parent_ino)) return std::errc::invalid_argument;
    // Swap the two entries' targets in place: names and cookies stay where they are.
    const_cast<L::DirEntryRec*>(src)->ino = dst_ino;
    const_cast<L::DirEntryRec*>(src)->type = dr->mode & S_IFMT;
    const_cast<L::DirEntryRec*>(dst)->ino = src_ino;
    const_cast<L::DirEntryRec*>(dst)->type = sr->mode & S_IFMT;
    if (old_parent_ino != new_parent_ino) {
      if (is_dir(*sr)) {
        sr->parent = new_parent_ino;
        --old_parent->nlink;
        ++new_parent->nlink;
      }
      if (is_dir(*dr)) {
        dr->parent = old_parent_ino;
        --new_parent->nlink;
        ++old_parent->nlink;
      }
    }
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
    if (dr && !dr->dir->entries.empty()) return std::errc::directory_not_empty;
  } else if (dr && is_dir(*dr)) {
    return std::errc::is_a_directory;
  }
  // Make the new entry before touching the old one, so running out of segment memory
  // leaves both names as they were.
  if (dst) {
    const_cast<L::DirEntryRec*>(dst)->ino = src_ino;
    const_cast<L::DirEntryRec*>(dst)->type = sr->mode & S_IFMT;
  } else {
    try {
      s.add_entry(new_parent_ino, *new_parent, new_name, src_ino, sr->mode);
    } catch (const boost::interprocess::bad_alloc&) {
      return std::errc::no_space_on_device;
    }
  }
  s.remove_entry(*old_parent, old_name);
  if (is_dir(*sr) && old_parent_ino != new_parent_ino) {
    sr->parent = new_parent_ino;
    --old_parent->nlink;
    ++new_parent->nlink;
  }
  if (dr) {
    // The replaced inode loses its name.
    if (is_dir(*dr)) {
      dr->nlink = 0;
      --new_parent->nlink;
    } else {
      if (dr->nlink > 1) s.unreserve_inode();
      --dr->nlink;
    }
    touch_c(*dr, ts);
    s.maybe_free(dst_ino, *dr);
  }
  touch_c(*sr, ts);
  touch_mc(*old_parent, ts);
  touch_mc(*new_parent, ts);
  return success();
}

Result<void> Store::readdir(Ino dir_ino, std::uint64_t offset, bool plus, const DirEmitter& emit) {
  std::shared_lock lk(impl_->ns_mutex);
  HC_TRY(dir, impl_->dir_of(dir_ino));
  auto emit_one = [&](std::string_view name, Ino ino, std::uint64_t next, bool counted) {
    InodeRec* r = impl_->rec(ino);
    if (!r) return true;  // cannot happen under ns lock; skip rather than lie
    Attr a = impl_->locked_attr(ino, *r);
    DirEntry e{name, ino, a.mode, next};
    if (!emit(e, plus ? &a : nullptr)) return false;
    if (plus && counted) r->lookups.fetch_add(1);
    return true;
  };
  if (offset < 1 && !emit_one(".", dir_ino, 1, false)) return success();
  if (offset < 2 && !emit_one("..", dir->parent, 2, false)) return success();
  auto& idx = dir->dir->entries.get<L::ByCookie>();
  for (auto it = idx.lower_bound(std::max(offset, L::kFirstCookie)); it != idx.end(); ++it) {
    if (!emit_one(L::view(it->name), it->ino, it->cookie + 1, true)) break;
  }
  return success();
}

// --- handles ----------------------------------------------------------------------------

Result<void> Store::open(Ino ino) {
  std::shared_lock lk(impl_->ns_mutex);
  HC_TRY(r, impl_->get(ino));
  r->opens.fetch_add(1);
  return success();
}

void Store::release(Ino ino) {
  std::uint64_t generation = 0;
  {
    std::shared_lock lk(impl_->ns_mutex);
    InodeRec* r = impl_->rec(ino);
    if (!r) return;
    if (r->opens.fetch_sub(1) != 1 || r->nlink != 0) return;
    generation = r->generation;
  }
  impl_->free_if_unreferenced(ino, generation);
}

// --- data -------------------------------------------------------------------------------

Result<std::size_t> Store::read(Ino ino, std::uint64_t offset, std::span<std::byte> out) {
  auto& s = *impl_;
  std::shared_lock lk(s.ns_mutex);
  HC_TRY(r, s.get(ino));
  if (is_dir(*r)) return std::errc::is_a_directory;
  if (!is_reg(*r)) return std::errc::invalid_argument;
  std::shared_lock ilk(s.stripe(ino));
  if (offset >= r->size) return std::size_t{0};
  std::uint64_t end = offset + std::min<std::uint64_t>(out.size(), r->size - offset);  // no overflow
  const auto& pt = *r->pages;
  auto it = pt.lower_bound(offset / kPageSize);
  for (std::uint64_t pos = offset; pos < end;) {
    std::byte* dst = out.data() + (pos - offset);
    if (it == pt.end() || it->first > pos / kPageSize) {  // a hole, up to the next page
      std::uint64_t hole_end = it == pt.end() ? end : std::min(end, it->first * kPageSize);
      std::memset(dst, 0, hole_end - pos);
      pos = hole_end;
      continue;
    }
    // One pread for the run of file pages that follow each other in the data region.
    off_t at = Impl::data_offset(it->second) + static_cast<off_t>(pos % kPageSize);
    it = Impl::last_of_run(it, pt.end(), end);
    std::uint64_t run_end = std::min(end, (it->first + 1) * kPageSize);
    HC_TRYV(s.read_data(dst, run_end - pos, at));
    pos = run_end;
    ++it;
  }
  return static_cast<std::size_t>(end - offset);
}

Result<std::size_t> Store::write(Ino ino, std::uint64_t offset, std::span<const std::byte> data,
                                 const Caller& caller) {
  iovec one{const_cast<std::byte*>(data.data()), data.size()};
  return write(ino, offset, std::span<const iovec>(&one, 1), caller);
}

Result<std::size_t> Store::write(Ino ino, std::uint64_t offset, std::span<const iovec> data,
                                 const Caller& caller) {
  std::size_t len = 0;
  for (const iovec& v : data) len += v.iov_len;
  auto& s = *impl_;
  std::shared_lock lk(s.ns_mutex);
  HC_TRY(r, s.get(ino));
  if (is_dir(*r)) return std::errc::is_a_directory;
  if (!is_reg(*r)) return std::errc::invalid_argument;
  if (len == 0) return std::size_t{0};
  if (offset >= kMaxFileSize) return std::errc::file_too_large;
  len = static_cast<std::size_t>(std::min<std::uint64_t>(len, kMaxFileSize - offset));
  std::unique_lock ilk(s.stripe(ino));
  auto& pt = *r->pages;

  // Which pages of the range are missing, in order; reserve as many as the quota allows.
  std::uint64_t first = offset / kPageSize, last = (offset + len - 1) / kPageSize;
  std::uint64_t missing = 0;
  {
    auto it = pt.lower_bound(first);
    std::uint64_t present = 0;
    for (; it != pt.end() && it->first <= last; ++it) ++present;
    missing = (last - first + 1) - present;
  }
  std::uint64_t reserved = missing ? s.reserve_pages(missing, true) : 0;
  std::uint64_t used = 0;

  // Allocate the missing pages first, in file order and as many as the quota gave; the
  // first missing page beyond that is where this write stops (a short write).
  std::uint64_t stop = last + 1;
  if (missing) {
    std::vector<std::uint32_t> fresh;
    fresh.reserve(reserved);
    for (std::uint64_t index = first; index <= last; ++index) {
      if (pt.find(index) != pt.end()) continue;
      if (fresh.size() == reserved) {
        stop = index;
        break;
      }
      std::uint32_t page = s.take_page();
      try {
        pt.emplace(index, page);
      } catch (const boost::interprocess::bad_alloc&) {
        std::lock_guard plk(s.pool_mutex);
        s.page_pool->give(page);
        stop = index;
        break;
      }
      fresh.push_back(page);
    }
    used = fresh.size();
    r->pages_held += used;
  }

  // Copy up to the stop, one pwritev per run of file pages that follow each other in the
  // data region. A copy that fails (the kernel out of memory) ends the write there.
  std::uint64_t end = std::min<std::uint64_t>(offset + len, stop * kPageSize);
  std::uint64_t written = 0;
  std::optional<std::errc> copy_error;
  IovCursor source(data);
  // A FUSE write comes in one or two buffers: its slices fit here without an allocation.
  boost::container::small_vector<iovec, 4> slices;
  auto it = pt.lower_bound(first);  // every page up to the stop is present
  while (offset + written < end) {
    std::uint64_t pos = offset + written;
    auto run_first = it;
    off_t at = Impl::data_offset(it->second) + static_cast<off_t>(pos % kPageSize);
    it = Impl::last_of_run(it, pt.end(), end);
    std::uint64_t run_end = std::min(end, (it->first + 1) * kPageSize);
    slices.clear();
    source.take(run_end - pos, slices);
    if (auto put = s.write_data({slices.data(), slices.size()}, at); !put) {
      copy_error = put.error();
      break;
    }
    for (auto p = run_first;; ++p) {
      p->second &= ~L::kUnwritten;
      if (p == it) break;
    }
    written = run_end - offset;
    ++it;
  }
  s.unreserve_pages(reserved - used);
  if (written == 0) return copy_error.value_or(std::errc::no_space_on_device);
  r->size = std::max<std::uint64_t>(r->size, offset + written);
  touch_mc(*r, now());
  // A write by an unprivileged caller drops setuid, and setgid with group-exec.
  if (!caller.privileged && (r->mode & (S_ISUID | S_ISGID)))
    store_mode(*r, without_suid_sgid(r->mode));
  return static_cast<std::size_t>(written);
}

Result<void> Store::fallocate(Ino ino, int mode, std::uint64_t offset, std::uint64_t len) {
  if (len == 0) return std::errc::invalid_argument;
  bool punch = mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
  if (!punch && mode != 0 && mode != FALLOC_FL_KEEP_SIZE) return std::errc::operation_not_supported;
  if (offset + len > kMaxFileSize || offset + len < offset) return std::errc::file_too_large;
  auto& s = *impl_;
  std::shared_lock lk(s.ns_mutex);
  HC_TRY(r, s.get(ino));
  if (is_dir(*r)) return std::errc::is_a_directory;
  if (!is_reg(*r)) return std::errc::no_such_device;
  std::unique_lock ilk(s.stripe(ino));
  auto& pt = *r->pages;
  std::uint64_t end = offset + len;
  timespec ts = now();

  if (punch) {
    std::uint64_t first_full = pages_for(offset), end_full = end / kPageSize;
    if (first_full > end_full) {  // inside one page
      s.zero_in_page(*r, offset / kPageSize, offset % kPageSize, end % kPageSize);
    } else {
      if (offset % kPageSize)
        s.zero_in_page(*r, offset / kPageSize, offset % kPageSize, kPageSize);
      if (end % kPageSize) s.zero_in_page(*r, end / kPageSize, 0, end % kPageSize);
      s.drop_page_range(*r, first_full, end_full);
    }
    touch_mc(*r, ts);
    return success();
  }

  // Reserve every missing page or none.
  std::uint64_t first = offset / kPageSize, last = (end - 1) / kPageSize;
  std::uint64_t present = 0;
  for (auto it = pt.lower_bound(first); it != pt.end() && it->first <= last; ++it) ++present;
  std::uint64_t missing = (last - first + 1) - present;
  if (missing && !s.reserve_pages(missing, false)) return std::errc::no_space_on_device;
  std::vector<std::uint32_t> added;
  try {
    pt.reserve(pt.size() + missing);
  } catch (const boost::interprocess::bad_alloc&) {
    s.unreserve_pages(missing);
    return std::errc::no_space_on_device;
  }
  for (std::uint64_t index = first; index <= last && added.size() < missing; ++index) {
    if (pt.find(index) != pt.end()) continue;
    std::uint32_t page = s.take_page();
    pt.emplace(index, page | L::kUnwritten);  // capacity reserved: cannot throw
    added.push_back(page);
  }
  r->pages_held += added.size();
  if (mode == 0 && end > r->size) r->size = end;
  touch_c(*r, ts);
  return success();
}

Result<std::uint64_t> Store::seek(Ino ino, std::uint64_t offset, int whence) {
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return std::errc::invalid_argument;
  std::shared_lock lk(impl_->ns_mutex);
  HC_TRY(r, impl_->get(ino));
  std::shared_lock ilk(impl_->stripe(ino));
  if (offset >= r->size) return std::errc::no_such_device_or_address;
  if (!is_reg(*r)) return whence == SEEK_DATA ? offset : r->size;
  const auto& pt = *r->pages;
  auto is_data = [](const L::PageMapValue& p) { return !(p.second & L::kUnwritten); };
  std::uint64_t index = offset / kPageSize;
  auto it = pt.lower_bound(index);
  if (whence == SEEK_DATA) {
    while (it != pt.end() && !is_data(*it)) ++it;
    if (it == pt.end()) return std::errc::no_such_device_or_address;
    std::uint64_t pos = std::max(offset, it->first * kPageSize);
    if (pos >= r->size) return std::errc::no_such_device_or_address;
    return pos;
  }
  // SEEK_HOLE: the first page at or after `index` that is absent or unwritten.
  while (it != pt.end() && it->first == index && is_data(*it)) {
    ++index;
    ++it;
  }
  return std::min(r->size, std::max(offset, index * kPageSize));
}

// --- xattrs -----------------------------------------------------------------------------

namespace {

enum class XattrNs { kUser, kTrusted, kSecurity, kUnsupported };

XattrNs xattr_ns(std::string_view name) {
  if (name.starts_with("user.")) return XattrNs::kUser;
  if (name.starts_with("trusted.")) return XattrNs::kTrusted;
  if (name.starts_with("security.")) return XattrNs::kSecurity;
  return XattrNs::kUnsupported;
}

}  // namespace

Result<std::size_t> Store::getxattr(Ino ino, std::string_view name, std::span<std::byte> out) {
  if (name.size() > kXattrNameMax) return std::errc::result_out_of_range;
  if (xattr_ns(name) == XattrNs::kUnsupported) return std::errc::operation_not_supported;
  std::shared_lock lk(impl_->ns_mutex);
  HC_TRY(r, impl_->get(ino));
  std::shared_lock ilk(impl_->stripe(ino));
  if (!r->xattrs) return std::errc::no_message_available;  // ENODATA
  for (const auto& x : *r->xattrs) {
    if (L::view(x.name) != name) continue;
    if (out.empty()) return x.value.size();
    if (out.size() < x.value.size()) return std::errc::result_out_of_range;
    std::memcpy(out.data(), x.value.data(), x.value.size());
    return x.value.size();
  }
  return std::errc::no_message_available;
}

Result<void> Store::setxattr(Ino ino, std::string_view name, std::span<const std::byte> value,
                             int flags) {
  if (name.empty()) return std::errc::invalid_argument;
  if (name.size() > kXattrNameMax) return std::errc::result_out_of_range;
  if (value.size() > kXattrValueMax) return std::errc::argument_list_too_long;
  if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) return std::errc::invalid_argument;
  XattrNs ns = xattr_ns(name);
  if (ns == XattrNs::kUnsupported) return std::errc::operation_not_supported;
  auto& s = *impl_;
  std::shared_lock lk(s.ns_mutex);
  HC_TRY(r, s.get(ino));
  // As the VFS does for user.*: only regular files and directories carry them.
  if (ns == XattrNs::kUser && !is_reg(*r) && !is_dir(*r)) return std::errc::operation_not_permitted;
  std::unique_lock ilk(s.stripe(ino));
  std::string_view v(reinterpret_cast<const char*>(value.data()), value.size());
  try {
    if (!r->xattrs)
      r->xattrs = s.segment->construct<L::XattrList>(boost::interprocess::anonymous_instance)(
          s.alloc<L::XattrRec>());
    auto& list = *r->xattrs;
    auto it = std::find_if(list.begin(), list.end(),
                           [&](const L::XattrRec& x) { return L::view(x.name) == name; });
    if (it != list.end() && (flags & XATTR_CREATE)) return std::errc::file_exists;
    if (it == list.end() && (flags & XATTR_REPLACE)) return std::errc::no_message_available;
    std::uint64_t bytes = r->xattr_bytes;
    if (it != list.end()) bytes -= it->value.size();
    else bytes += name.size() + kXattrOverhead;
    bytes += value.size();
    const std::uint64_t old_bytes = r->xattr_bytes;  // before the recharge changes it
    HC_TRYV(s.recharge_xattrs(*r, bytes));
    Rollback undo([&] { (void)s.recharge_xattrs(*r, old_bytes); });
    if (it != list.end()) {
      it->value.assign(v.data(), v.size());
    } else {
      list.emplace_back(name, v, s.alloc<char>());
    }
    undo.dismiss();
  } catch (const boost::interprocess::bad_alloc&) {
    return std::errc::no_space_on_device;
  }
  touch_c(*r, now());
  return success();
}

Result<std::size_t> Store::listxattr(Ino ino, std::span<char> out) {
  std::shared_lock lk(impl_->ns_mutex);
  HC_TRY(r, impl_->get(ino));
  std::shared_lock ilk(impl_->stripe(ino));
  std::size_t need = 0;
  if (r->xattrs)
    for (const auto& x : *r->xattrs) need += x.name.size() + 1;
  if (out.empty()) return need;
  if (out.size() < need) return std::errc::result_out_of_range;
  std::size_t pos = 0;
  if (r->xattrs)
    for (const auto& x : *r->xattrs) {
      std::memcpy(out.data() + pos, x.name.data(), x.name.size());
      pos += x.name.size();
      out[pos++] = '\0';
    }
  return need;
}

Result<void> Store::removexattr(Ino ino, std::string_view name) {
  if (name.size() > kXattrNameMax) return std::errc::result_out_of_range;
  if (xattr_ns(name) == XattrNs::kUnsupported) return std::errc::operation_not_supported;
  auto& s = *impl_;
  std::shared_lock lk(s.ns_mutex);
  HC_TRY(r, s.get(ino));
  std::unique_lock ilk(s.stripe(ino));
  if (!r->xattrs) return std::errc::no_message_available;
  auto& list = *r->xattrs;
  auto it = std::find_if(list.begin(), list.end(),
                         [&](const L::XattrRec& x) { return L::view(x.name) == name; });
  if (it == list.end()) return std::errc::no_message_available;
  std::uint64_t bytes = r->xattr_bytes - it->name.size() - it->value.size() - kXattrOverhead;
  list.erase(it);
  (void)s.recharge_xattrs(*r, bytes);  // only gives back
  touch_c(*r, now());
  return success();
}

// --- accounting -------------------------------------------------------------------------

StatFs Store::statfs() const {
  StatFs f;
  const auto& h = *impl_->header;
  std::uint64_t used = std::min(h.pages_used.load(), h.quota_pages);
  f.blocks = h.quota_pages;
  f.blocks_free = h.quota_pages - used;
  f.files = h.max_inodes;
  f.files_free = h.max_inodes - std::min(h.inodes_used.load(), h.max_inodes);
  return f;
}

std::uint64_t Store::pages_used() const { return impl_->header->pages_used.load(); }
std::uint64_t Store::inodes_used() const { return impl_->header->inodes_used.load(); }
std::uint64_t Store::quota_pages() const { return impl_->header->quota_pages; }
std::uint64_t Store::max_inodes() const { return impl_->header->max_inodes; }
int Store::meta_fd() const noexcept { return impl_->meta_fd.get(); }
int Store::data_fd() const noexcept { return impl_->data_fd.get(); }

}  // namespace hostchanfs::shm
