#include "shm/directory.hpp"

#include <sys/stat.h>

namespace hostchanfs::shm {

const DirEntryRec* Directory::find(std::string_view name) const {
  auto& idx = entries_.get<ByName>();
  auto it = idx.find(name);
  return it == idx.end() ? nullptr : &*it;
}

void Directory::add(std::string_view name, std::uint64_t ino, mode_t mode) {
  entries_.emplace(name, ino, next_cookie_, mode & S_IFMT, Alloc<char>(entries_.get_allocator()));
  ++next_cookie_;
}

bool Directory::remove(std::string_view name) {
  auto& idx = entries_.get<ByName>();
  auto it = idx.find(name);
  if (it == idx.end()) return false;
  idx.erase(it);
  return true;
}

// Neither key (name, cookie) changes, so the entry may change in place.
void Directory::retarget(const DirEntryRec& entry, std::uint64_t ino, mode_t mode) {
  auto& e = const_cast<DirEntryRec&>(entry);
  e.ino = ino;
  e.type = mode & S_IFMT;
}

}  // namespace hostchanfs::shm
