// The managed segment: the part of the meta memfd where variable-sized metadata lives
// (directories, page tables, symlink targets, xattrs), allocated by Boost.Interprocess
// with offset_ptr-based containers, so that a daemon that maps the region at another
// address (a restarted one) finds every object again. Everything placed here must hold
// no raw pointer and no process-local type.
#pragma once

#include <string_view>

#include <boost/interprocess/allocators/allocator.hpp>
#include <boost/interprocess/containers/string.hpp>
#include <boost/interprocess/managed_external_buffer.hpp>
#include <boost/interprocess/mem_algo/rbtree_best_fit.hpp>
#include <boost/interprocess/offset_ptr.hpp>
#include <boost/interprocess/sync/mutex_family.hpp>

namespace hostchanfs::shm {

namespace bip = boost::interprocess;

// The segment allocator locks itself (mutex_family): page tables grow under a per-inode
// lock, so two threads may allocate at once.
using Segment = bip::basic_managed_external_buffer<char, bip::rbtree_best_fit<bip::mutex_family>,
                                                   bip::iset_index>;
using SegmentManager = Segment::segment_manager;
template <class T>
using Alloc = bip::allocator<T, SegmentManager>;
using String = bip::basic_string<char, std::char_traits<char>, Alloc<char>>;

inline std::string_view view(const String& s) noexcept { return {s.data(), s.size()}; }

template <class T>
Alloc<T> alloc_in(Segment& segment) {
  return Alloc<T>(segment.get_segment_manager());
}

// A new unnamed object of type T in the segment; bip::bad_alloc when the segment is full.
template <class T, class... Args>
T* make_in(Segment& segment, Args&&... args) {
  return segment.construct<T>(bip::anonymous_instance)(std::forward<Args>(args)...);
}

}  // namespace hostchanfs::shm
