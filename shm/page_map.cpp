#include "shm/page_map.hpp"

#include <algorithm>
#include <functional>

namespace hostchanfs::shm {

namespace S = persist::store;

namespace {

S::PageKey key(Ino ino, std::uint64_t fork, std::uint64_t index) {
  return S::page_key(static_cast<std::uint32_t>(ino), fork, std::min(index, S::kIndexMask));
}
// The first key after every page of `fork` of `ino`.
S::PageKey end_of(Ino ino, std::uint64_t fork) {
  return fork + 1 < 4 ? S::page_key(static_cast<std::uint32_t>(ino), fork + 1, 0)
                      : S::page_key(static_cast<std::uint32_t>(ino + 1), 0, 0);
}
bool same_fork(const S::PageKey& k, Ino ino, std::uint64_t fork) {
  return k.ino == ino && S::key_fork(k) == fork;
}

}  // namespace

void PageMap::collect(Ino ino, Fork fork, std::uint64_t first, std::uint64_t last, std::vector<PageEntry>& out) const {
  out.clear();
  for (auto c = tree_.lower_bound(key(ino, fork, first)); c.valid() && same_fork(c.key(), ino, fork); c.next()) {
    std::uint64_t index = S::key_index(c.key());
    if (index > last) break;
    out.push_back({index, c.value()});
  }
}

std::optional<std::uint32_t> PageMap::find(Ino ino, Fork fork, std::uint64_t index) const {
  return tree_.find(key(ino, fork, index));
}

bool PageMap::any_from(Ino ino, Fork fork, std::uint64_t first) const {
  auto c = tree_.lower_bound(key(ino, fork, first));
  return c.valid() && same_fork(c.key(), ino, fork);
}

std::uint64_t PageMap::count(Ino ino, Fork fork, std::uint64_t first, std::uint64_t last) const {
  std::uint64_t n = 0;
  for (auto c = tree_.lower_bound(key(ino, fork, first));
       c.valid() && same_fork(c.key(), ino, fork) && S::key_index(c.key()) <= last; c.next())
    ++n;
  return n;
}

std::uint64_t PageMap::next_data(Ino ino, std::uint64_t index) const {
  for (auto c = tree_.lower_bound(key(ino, S::kFileFork, index)); c.valid() && same_fork(c.key(), ino, S::kFileFork);
       c.next())
    if (is_written(c.value())) return S::key_index(c.key());
  return UINT64_MAX;
}

std::uint64_t PageMap::next_hole(Ino ino, std::uint64_t index) const {
  for (auto c = tree_.lower_bound(key(ino, S::kFileFork, index));
       c.valid() && same_fork(c.key(), ino, S::kFileFork) && S::key_index(c.key()) == index && is_written(c.value());
       c.next())
    ++index;
  return index;
}

Result<void> PageMap::insert(Tx& tx, Ino ino, Fork fork, std::uint64_t index, std::uint32_t value) {
  HC_TRY(inserted, tree_.insert(tx, key(ino, fork, index), value));
  if (!inserted) persist::fatal("page map: page " + std::to_string(index) + " of inode " + std::to_string(ino) +
                                " inserted twice");
  return success();
}

void PageMap::update(Tx& tx, Ino ino, Fork fork, std::uint64_t index, std::uint32_t value) {
  if (!tree_.update(tx, key(ino, fork, index), value))
    persist::fatal("page map: update of page " + std::to_string(index) + " of inode " + std::to_string(ino) +
                   ", which it does not hold");
}

std::optional<std::uint32_t> PageMap::erase(Tx& tx, Ino ino, Fork fork, std::uint64_t index) {
  return tree_.erase(tx, key(ino, fork, index));
}

PageMap::Dropped PageMap::drop(Tx& tx, Ino ino, bool all, std::uint64_t from, std::uint64_t to, std::uint64_t max,
                               const persist::PagePool& pool) {
  const S::PageKey lo = all ? key(ino, S::kFileFork, 0) : key(ino, S::kFileFork, from);
  const S::PageKey hi = all ? end_of(ino, 3) : (to >= S::kIndexMask ? end_of(ino, S::kFileFork) : key(ino, S::kFileFork, to));
  // The frees come after erase_range, which does not see their log (64 bytes each, for
  // commit): kMaxDrop of them fit beside its own logging, whatever the tree's shape.
  max = std::min(max, kMaxDrop);
  Dropped d;
  thread_local std::vector<std::uint32_t> freed;
  freed.clear();
  auto r = tree_.erase_range(tx, lo, hi, max, [&](const S::PageKey& k, std::uint32_t value) {
    freed.push_back(page_number(value));
    if (S::key_fork(k) != S::kXattrFork) ++d.charged;
  });
  // Highest first: the pool is a stack, so the next writes take them in ascending order,
  // and a new file's pages follow each other in the data memfd (one pwrite/pread per run).
  std::sort(freed.begin(), freed.end(), std::greater<>());
  for (std::uint32_t page : freed) pool.free(tx, page);
  d.entries = r.erased;
  d.done = r.done;
  return d;
}

}  // namespace hostchanfs::shm
