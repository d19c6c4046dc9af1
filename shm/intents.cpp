#include "shm/intents.hpp"

namespace hostchanfs::shm {

namespace S = persist::store;

Intents::Intents(S::Superblock& sb) : sb_(sb) {
  for (std::uint32_t i = S::kIntents; i > 0; --i) free_.push_back(i - 1);
}

Intents::Lease::~Lease() {
  if (owner_) owner_->release(index_);
}

Intents::Lease Intents::acquire() {
  std::unique_lock lk(mutex_);
  freed_.wait(lk, [&] { return !free_.empty(); });
  std::uint32_t index = free_.back();
  free_.pop_back();
  return Lease(this, index);
}

void Intents::release(std::uint32_t index) {
  {
    std::lock_guard lk(mutex_);
    free_.push_back(index);
  }
  freed_.notify_one();
}

void Intents::hold(persist::Tx& tx, const Lease& lease, Ino ino, std::span<const std::uint32_t> pages) {
  if (pages.size() > S::kIntentPages) persist::fatal("a write intent of more than kIntentPages pages");
  S::Intent& in = sb_.intents[lease.index()];
  tx.set(in.ino, std::uint64_t{ino});
  tx.write(in.pages, pages.data(), pages.size_bytes());
  tx.set(in.count, static_cast<std::uint32_t>(pages.size()));
}

void Intents::clear(persist::Tx& tx, std::uint32_t index) { tx.set(sb_.intents[index].count, std::uint32_t{0}); }

}  // namespace hostchanfs::shm
