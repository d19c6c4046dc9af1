// The lifetime of an inode (the rule is written in shm/store_impl.hpp): its charge going
// back, the page-map work that drops or adds many pages in txs of their own, freeing the
// slot, and what attach finishes after a death.
#include <algorithm>
#include <mutex>
#include <vector>

#include "shm/store_impl.hpp"

namespace hostchanfs::shm {

namespace {

bool holds_pages(const InodeRecord& r) { return r.pages_held || r.xattr_len || r.xattr_bytes; }

}  // namespace

void Store::Impl::drop_everything(Tx& tx, InodeRecord& r) {
  // The blob's pages lose their charge now and go with the work, which runs under the
  // namespace lock exclusive (or at attach): no allocation can meet them uncharged.
  quota.unreserve_pages(tx, pages_for(r.xattr_bytes));
  if (r.xattr_bytes) tx.set(r.xattr_bytes, std::uint64_t{0});
  if (r.xattr_len) tx.set(r.xattr_len, std::uint32_t{0});
  tx.set(r.flags, (r.flags | rec::kTrimAll) & ~std::uint32_t{rec::kFilling});
  tx.set(r.work_from, std::uint64_t{0});
  tx.set(r.work_to, rec::kNoWork);
}

void Store::Impl::settle(Tx& tx, Ino ino, InodeRecord& r) {
  if (ino == kRootIno || r.nlink != 0 || r.opens != 0) return;
  if (!(r.flags & rec::kChargeReleased)) {
    // tmpfs gives the charge back when the last name and the last open file go; the
    // kernel's FORGET for a FUSE inode can come much later, and statfs must not wait for it.
    quota.unreserve_inode(tx);
    tx.set(r.flags, r.flags | rec::kChargeReleased);
    if (holds_pages(r)) return drop_everything(tx, r);
  } else if (inodes.lookups(ino) != 0) {
    return;  // pages gained since the charge went stay until the kernel forgets the inode
  } else if (holds_pages(r)) {
    return drop_everything(tx, r);
  }
  if (!has_work(r) && inodes.lookups(ino) == 0) inodes.free(tx, ino);
}

void Store::Impl::finish(Ino ino, std::uint64_t generation) {
  for (;;) {
    InodeRecord* r = inodes.find(ino, generation);
    if (!r) return;
    if (has_work(*r)) {
      work_step(ino, *r);
      continue;
    }
    const bool releases = !(r->flags & rec::kChargeReleased);
    if (ino == kRootIno || r->nlink != 0 || r->opens != 0 || (!releases && inodes.lookups(ino) != 0)) return;
    Tx tx(*region);
    settle(tx, ino, *r);
    tx.commit();
    if (inodes.find(ino, generation) == r && !has_work(*r) && !releases) return;  // nothing more to do
  }
}

void Store::Impl::free_if_unreferenced(Ino ino, std::uint64_t generation) {
  std::unique_lock lk(ns_mutex);
  finish(ino, generation);
}

void Store::Impl::work_step(Ino ino, InodeRecord& r) {
  Tx tx(*region);
  bool done = false;
  if (r.flags & rec::kFilling) {
    // Add the missing pages of the next window, unwritten; their quota is reserved.
    const std::uint64_t from = r.work_from, to = std::min(r.work_to, from + sb.chunk_pages);
    thread_local std::vector<PageEntry> present;
    pages.collect(ino, rec::kFileFork, from, to - 1, present);
    std::size_t k = 0;
    std::uint64_t added = 0;
    for (std::uint64_t index = from; index < to; ++index) {
      if (k < present.size() && present[k].index == index) {
        ++k;
        continue;
      }
      auto page = data_pool.alloc(tx);
      if (!page) persist::fatal("fallocate: the data pool is empty though the quota was reserved");
      if (!pages.insert(tx, ino, rec::kFileFork, index, *page | kUnwritten))
        persist::fatal("fallocate: no page-map node though the schema sizes the arena for every page");
      ++added;
    }
    if (added) tx.set(r.pages_held, r.pages_held + added);
    done = to >= r.work_to;
    if (!done) tx.set(r.work_from, to);
  } else {
    auto d = pages.drop(tx, ino, r.flags & rec::kTrimAll, r.work_from, r.work_to, sb.chunk_pages, data_pool);
    if (d.charged) {
      tx.set(r.pages_held, r.pages_held - d.charged);
      quota.unreserve_pages(tx, d.charged);
    }
    done = d.done;
  }
  if (done) {
    tx.set(r.work_from, rec::kNoWork);
    tx.set(r.flags, r.flags & ~std::uint32_t{rec::kTrimAll | rec::kFilling});
  }
  tx.commit();
}

void Store::Impl::run_work_shared(Ino ino, InodeRecord& r) {
  while (has_work(r)) {
    std::unique_lock pm(page_map_lock);
    work_step(ino, r);
  }
}

void Store::Impl::recover() {
  std::unique_lock lk(ns_mutex);
  intents.for_each_held([&](std::uint32_t index, const rec::Intent& in) {
    Tx tx(*region);
    for (std::uint32_t i = 0; i < in.count; ++i) data_pool.free(tx, in.pages[i]);
    quota.unreserve_pages(tx, in.count);
    intents.clear(tx, index);
    tx.commit();
  });
  const persist::SlotTable& slots = inodes.slots();
  for (std::uint32_t slot = 0; slot < slots.high_water(); ++slot)
    if (slots.live(slot)) finish(InodeTable::ino_of(slot), slots.generation(slot));
}

}  // namespace hostchanfs::shm
