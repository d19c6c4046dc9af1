#include "shm/page_pool.hpp"

#include <algorithm>
#include <cstdlib>

namespace hostchanfs::shm {

std::uint32_t PagePool::take() {
  std::lock_guard lk(mutex_);
  std::uint32_t p = 0;
  if (!free_.take(p)) std::abort();  // quota reserved => a page exists
  return p;
}

void PagePool::put_back(std::uint32_t page) {
  std::lock_guard lk(mutex_);
  free_.give(page_number(page));
}

std::uint64_t PagePool::drop(PageTable& pt, std::uint64_t first, std::uint64_t end) {
  if (first >= end) return 0;
  auto lo = pt.lower_bound(first);
  auto hi = pt.lower_bound(end);
  std::vector<std::uint32_t> freed;
  freed.reserve(static_cast<std::size_t>(hi - lo));
  for (auto j = lo; j != hi; ++j) freed.push_back(page_number(j->second));
  pt.erase(lo, hi);
  free(freed);
  return freed.size();
}

void PagePool::free(std::vector<std::uint32_t>& pages) {
  if (pages.empty()) return;
  std::sort(pages.begin(), pages.end());
  data_.punch(pages);
  std::lock_guard lk(mutex_);
  for (auto p = pages.rbegin(); p != pages.rend(); ++p) free_.give(*p);
}

}  // namespace hostchanfs::shm
