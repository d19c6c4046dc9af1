// A directory's index: its entries ordered by name (lookup) and by cookie (stable readdir
// offsets). Cookies grow monotonically per directory and are never reused, so an offset
// handed to the kernel stays meaningful while entries come and go; 1 and 2 are "." and
// "..", which are not stored. Lives in the managed segment (persistent: part of
// kLayoutVersion). Callers hold the store's namespace lock: exclusive to change it,
// shared to read it.
//
// The member functions are the whole interface the store uses; a different index (a
// B+tree) replaces this file and directory.cpp, nothing else.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string_view>

#include <boost/multi_index/member.hpp>
#include <boost/multi_index/ordered_index.hpp>
#include <boost/multi_index_container.hpp>

#include "shm/segment.hpp"

namespace hostchanfs::shm {

struct DirEntryRec {
  DirEntryRec(std::string_view n, std::uint64_t i, std::uint64_t c, std::uint32_t t,
              const Alloc<char>& a)
      : name(n.data(), n.size(), a), ino(i), cookie(c), type(t) {}
  String name;
  std::uint64_t ino;
  std::uint64_t cookie;
  std::uint32_t type;  // S_IFMT bits
};

inline constexpr std::uint64_t kFirstCookie = 3;

class Directory {
 public:
  explicit Directory(const Alloc<DirEntryRec>& a) : entries_(a) {}

  const DirEntryRec* find(std::string_view name) const;
  // A new entry with the next cookie; bip::bad_alloc when the segment is full (then
  // nothing changed).
  void add(std::string_view name, std::uint64_t ino, mode_t mode);
  // false when there is no such name.
  bool remove(std::string_view name);
  // Point an existing entry at another inode (rename over it, exchange): its name and
  // cookie stay.
  void retarget(const DirEntryRec& entry, std::uint64_t ino, mode_t mode);
  bool empty() const noexcept { return entries_.empty(); }

  // The entries whose cookie is `cookie` or later, in cookie order, while `f(entry)`
  // returns true.
  template <class F>
  void list_from(std::uint64_t cookie, F&& f) const {
    auto& idx = entries_.get<ByCookie>();
    for (auto it = idx.lower_bound(cookie < kFirstCookie ? kFirstCookie : cookie); it != idx.end(); ++it)
      if (!f(*it)) break;
  }

 private:
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
  using Index = boost::multi_index::multi_index_container<
      DirEntryRec,
      boost::multi_index::indexed_by<
          boost::multi_index::ordered_unique<
              boost::multi_index::tag<ByName>,
              boost::multi_index::member<DirEntryRec, String, &DirEntryRec::name>, NameLess>,
          boost::multi_index::ordered_unique<
              boost::multi_index::tag<ByCookie>,
              boost::multi_index::member<DirEntryRec, std::uint64_t, &DirEntryRec::cookie>>>,
      Alloc<DirEntryRec>>;

  Index entries_;
  std::uint64_t next_cookie_ = kFirstCookie;
};

}  // namespace hostchanfs::shm
