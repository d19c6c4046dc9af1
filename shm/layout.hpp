// The store's persistent layout: what lives in the meta memfd. Everything here must stay
// valid when the region is mapped at another address by another process (offset_ptr only,
// no raw pointers, no process-local types). Bump kLayoutVersion on any change.
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>

#include <boost/container/flat_map.hpp>
#include <boost/interprocess/allocators/allocator.hpp>
#include <boost/interprocess/containers/string.hpp>
#include <boost/interprocess/containers/vector.hpp>
#include <boost/interprocess/managed_external_buffer.hpp>
#include <boost/interprocess/mem_algo/rbtree_best_fit.hpp>
#include <boost/interprocess/offset_ptr.hpp>
#include <boost/interprocess/sync/mutex_family.hpp>
#include <boost/multi_index/member.hpp>
#include <boost/multi_index/ordered_index.hpp>
#include <boost/multi_index_container.hpp>

namespace hostchanfs::shm::layout {

namespace bip = boost::interprocess;
namespace bmi = boost::multi_index;

inline constexpr char kMagic[8] = {'H', 'C', 'H', 'A', 'N', 'F', 'S', '\0'};
inline constexpr std::uint32_t kLayoutVersion = 1;

// The segment allocator locks itself (mutex_family): page tables grow under a per-inode
// lock, so two threads may allocate at once.
using Segment =
    bip::basic_managed_external_buffer<char, bip::rbtree_best_fit<bip::mutex_family>, bip::iset_index>;
using SegmentManager = Segment::segment_manager;
template <class T>
using Alloc = bip::allocator<T, SegmentManager>;
using String = bip::basic_string<char, std::char_traits<char>, Alloc<char>>;

inline std::string_view view(const String& s) noexcept { return {s.data(), s.size()}; }

// --- directories: entries ordered by name (lookup) and by cookie (stable readdir offsets).
// Cookies grow monotonically per directory and are never reused, so an offset handed to
// the kernel stays meaningful while entries come and go. 1 and 2 are "." and "..".
struct DirEntryRec {
  DirEntryRec(std::string_view n, std::uint64_t i, std::uint64_t c, std::uint32_t t,
              const Alloc<char>& a)
      : name(n.data(), n.size(), a), ino(i), cookie(c), type(t) {}
  String name;
  std::uint64_t ino;
  std::uint64_t cookie;
  std::uint32_t type;  // S_IFMT bits
};

struct NameLess {
  using is_transparent = void;
  static std::string_view sv(const String& s) noexcept { return view(s); }
  static std::string_view sv(std::string_view s) noexcept { return s; }
  template <class A, class B>
  bool operator()(const A& a, const B& b) const noexcept {
    return sv(a) < sv(b);
  }
};

struct ByName {};
struct ByCookie {};
using DirIndex = bmi::multi_index_container<
    DirEntryRec,
    bmi::indexed_by<
        bmi::ordered_unique<bmi::tag<ByName>, bmi::member<DirEntryRec, String, &DirEntryRec::name>,
                            NameLess>,
        bmi::ordered_unique<bmi::tag<ByCookie>,
                            bmi::member<DirEntryRec, std::uint64_t, &DirEntryRec::cookie>>>,
    Alloc<DirEntryRec>>;

inline constexpr std::uint64_t kFirstCookie = 3;

struct Directory {
  explicit Directory(const Alloc<DirEntryRec>& a) : entries(a) {}
  DirIndex entries;
  std::uint64_t next_cookie = kFirstCookie;
};

// --- regular files: file page index -> data page number. kUnwritten marks a page that
// fallocate reserved but nothing wrote yet: it reads as zeros and is a hole for SEEK_DATA,
// as on tmpfs.
inline constexpr std::uint32_t kUnwritten = 0x80000000u;
using PageMapValue = std::pair<std::uint64_t, std::uint32_t>;
using PageTable =
    boost::container::flat_map<std::uint64_t, std::uint32_t, std::less<std::uint64_t>,
                               Alloc<PageMapValue>>;

// --- xattrs: few per inode, so a vector with linear search.
struct XattrRec {
  XattrRec(std::string_view n, std::string_view v, const Alloc<char>& a)
      : name(n.data(), n.size(), a), value(v.data(), v.size(), a) {}
  String name;
  String value;
};
using XattrList = bip::vector<XattrRec, Alloc<XattrRec>>;

// A free list of slot numbers kept in the segment, never inside the slots themselves,
// plus a high-water mark: slots above it were never used (and cost no memory).
struct SlotPool {
  SlotPool(std::uint64_t cap, const Alloc<std::uint32_t>& a) : capacity(cap), free(a) {
    free.reserve(cap);  // give() never allocates
  }
  bool take(std::uint32_t& slot) {
    if (!free.empty()) {
      slot = free.back();
      free.pop_back();
      return true;
    }
    if (high_water >= capacity) return false;
    slot = static_cast<std::uint32_t>(high_water++);
    return true;
  }
  void give(std::uint32_t slot) { free.push_back(slot); }
  std::uint64_t capacity;
  std::uint64_t high_water = 0;
  bip::vector<std::uint32_t, Alloc<std::uint32_t>> free;
};

// One inode slot in the fixed table. mode == 0 means the slot is free. `generation` is
// bumped each time the slot is freed, so (ino, generation) is never reused.
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
  std::uint32_t charge_released;        // 1: pages and inode count given back (maybe_free)
  std::uint64_t parent;                 // directories: the ".." inode
  std::atomic<std::uint64_t> lookups;   // the kernel's lookup count
  std::atomic<std::uint32_t> opens;     // open handles
  bip::offset_ptr<Directory> dir;
  bip::offset_ptr<PageTable> pages;
  bip::offset_ptr<String> symlink;
  bip::offset_ptr<XattrList> xattrs;
};

// The fixed header at offset 0 of the meta memfd.
struct Header {
  char magic[8];
  std::uint32_t version;
  std::uint32_t inode_rec_size;
  std::uint64_t quota_pages;
  std::uint64_t max_inodes;
  std::uint64_t table_offset;    // InodeRec[max_inodes + 2] (slot 0 unused, 1 = root)
  std::uint64_t segment_offset;  // the managed segment
  std::uint64_t segment_size;
  std::atomic<std::uint64_t> pages_used;   // quota pages in use (data, symlinks, xattrs)
  std::atomic<std::uint64_t> inodes_used;  // tmpfs's count: inodes plus extra hard links
};

// Named objects in the segment.
inline constexpr const char* kPagePoolName = "hostchanfs.pages";
inline constexpr const char* kInodePoolName = "hostchanfs.inodes";

}  // namespace hostchanfs::shm::layout
