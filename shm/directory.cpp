#include "shm/directory.hpp"

#include <sys/stat.h>

#include <cstring>

namespace hostchanfs::shm {

namespace S = persist::store;

Directory::Directory(const persist::Region& region)
    : region_(region), slots_(region, S::kDirents), by_cookie_(region, S::kDirByCookie),
      by_name_(region, S::kDirByName) {}

std::optional<std::uint32_t> Directory::find(Ino dir, std::string_view name) const {
  const auto d = static_cast<std::uint32_t>(dir);
  const std::uint64_t h = S::name_hash(region_, name);
  for (auto c = by_name_.lower_bound(S::name_key(d, h, 0)); c.valid(); c.next()) {
    const S::DirNameKey& k = c.key();
    if (k.dir != d || k.hash_hi != static_cast<std::uint32_t>(h >> 32) ||
        k.hash_lo != static_cast<std::uint32_t>(h))
      break;
    if (name_of(entry(k.slot)) == name) return k.slot;
  }
  return std::nullopt;
}

Result<void> Directory::add(Tx& tx, Ino dir, InodeRecord& dir_rec, std::string_view name, Ino ino, mode_t mode) {
  auto slot = slots_.alloc(tx);
  if (!slot) return std::errc::no_space_on_device;
  DirentRecord e{};
  e.cookie = dir_rec.next_cookie;
  e.dir = static_cast<std::uint32_t>(dir);
  e.ino = static_cast<std::uint32_t>(ino);
  e.type = static_cast<std::uint16_t>((mode & S_IFMT) >> 12);
  e.name_len = static_cast<std::uint8_t>(name.size());
  std::memcpy(e.name, name.data(), name.size());
  tx.fresh(&slots_.at<DirentRecord>(*slot), &e, offsetof(DirentRecord, name) + name.size());
  tx.set(dir_rec.next_cookie, dir_rec.next_cookie + 1);
  auto by_cookie = by_cookie_.insert(tx, S::cookie_key(e.dir, e.cookie), *slot);
  if (!by_cookie) return by_cookie.error();
  auto by_name = by_name_.insert(tx, S::name_key(e.dir, S::name_hash(region_, name), *slot), persist::Empty{});
  if (!by_name) return by_name.error();
  return success();
}

void Directory::remove(Tx& tx, std::uint32_t slot) {
  const DirentRecord& e = entry(slot);
  by_cookie_.erase(tx, S::cookie_key(e.dir, e.cookie));
  by_name_.erase(tx, S::name_key(e.dir, S::name_hash(region_, name_of(e)), slot));
  slots_.free(tx, slot);
}

void Directory::retarget(Tx& tx, std::uint32_t slot, Ino ino, mode_t mode) {
  DirentRecord& e = slots_.at<DirentRecord>(slot);
  tx.set(e.ino, static_cast<std::uint32_t>(ino));
  tx.set(e.type, static_cast<std::uint16_t>((mode & S_IFMT) >> 12));
}

bool Directory::empty(Ino dir) const {
  const auto d = static_cast<std::uint32_t>(dir);
  auto c = by_cookie_.lower_bound(S::cookie_key(d, 0));
  return !c.valid() || c.key().dir != d;
}

}  // namespace hostchanfs::shm
