#include "shm/persist/store_schema.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

namespace hostchanfs::shm::persist::store {

std::uint64_t default_max_inodes(std::uint64_t quota_pages) {
  return std::max<std::uint64_t>(1024, quota_pages);
}

Schema schema(std::uint64_t quota_pages, std::uint64_t max_inodes) {
  Schema s;
  s.user_version = kLayoutVersion;
  s.user_bytes = sizeof(Superblock);
  s.log_bytes = kLogBytes;
  s.pools = {PoolSpec{"data", 1, quota_pages, 0}};
  s.tables = {
      TableSpec{"inodes", sizeof(InodeRecord), max_inodes + 1, 1},
      TableSpec{"dirents", sizeof(DirentRecord), max_inodes, 0},
  };
  s.trees = {
      tree_spec<PageKey, std::uint32_t>("pages"),
      tree_spec<DirCookieKey, std::uint32_t>("dir.cookie"),
      tree_spec<DirNameKey, Empty>("dir.name"),
  };
  // Each tree at its most entries: one page-map entry per quota page (data, unwritten,
  // xattr blob or long symlink pages are all quota pages), one of each directory index
  // per name (every name costs an inode of the limit, as tmpfs counts links).
  const std::uint64_t most[] = {quota_pages, max_inodes, max_inodes};
  std::uint64_t nodes = kArenaSlack;
  for (std::size_t i = 0; i < s.trees.size(); ++i)
    nodes += btree_max_nodes(most[i], s.trees[i].leaf_cap, s.trees[i].inner_cap);
  s.arena_nodes = nodes;
  return s;
}

std::uint64_t meta_bytes(std::uint64_t quota_pages, std::uint64_t max_inodes) {
  return Region::size_for(schema(quota_pages, max_inodes));
}

std::uint64_t inodes_allowed(std::uint64_t quota_pages) {
  // meta_bytes grows with the inode limit: the largest limit within the bound, by halving.
  const std::uint64_t limit = meta_limit(quota_pages);
  // 0 from meta_bytes: no region can be planned (a capacity too large).
  std::uint64_t lo = 0, hi = (std::uint64_t{1} << 31) - 1;
  while (lo < hi) {
    std::uint64_t mid = lo + (hi - lo + 1) / 2;
    std::uint64_t bytes = meta_bytes(quota_pages, mid);
    if (bytes != 0 && bytes <= limit) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

namespace {
inline void sip_round(std::uint64_t& v0, std::uint64_t& v1, std::uint64_t& v2, std::uint64_t& v3) {
  v0 += v1;
  v1 = std::rotl(v1, 13);
  v1 ^= v0;
  v0 = std::rotl(v0, 32);
  v2 += v3;
  v3 = std::rotl(v3, 16);
  v3 ^= v2;
  v0 += v3;
  v3 = std::rotl(v3, 21);
  v3 ^= v0;
  v2 += v1;
  v1 = std::rotl(v1, 17);
  v1 ^= v2;
  v2 = std::rotl(v2, 32);
}
}  // namespace

std::uint64_t siphash24(std::uint64_t k0, std::uint64_t k1, const void* data, std::size_t len) {
  std::uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
  std::uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
  const auto* p = static_cast<const unsigned char*>(data);
  std::size_t full = len / 8 * 8;
  for (std::size_t i = 0; i < full; i += 8) {
    std::uint64_t m;
    std::memcpy(&m, p + i, 8);  // little-endian, as the algorithm reads it on x86/arm64
    v3 ^= m;
    sip_round(v0, v1, v2, v3);
    sip_round(v0, v1, v2, v3);
    v0 ^= m;
  }
  std::uint64_t b = std::uint64_t{len & 0xff} << 56;
  for (std::size_t i = full; i < len; ++i) b |= std::uint64_t{p[i]} << (8 * (i - full));
  v3 ^= b;
  sip_round(v0, v1, v2, v3);
  sip_round(v0, v1, v2, v3);
  v0 ^= b;
  v2 ^= 0xff;
  for (int i = 0; i < 4; ++i) sip_round(v0, v1, v2, v3);
  return v0 ^ v1 ^ v2 ^ v3;
}

std::uint64_t name_hash(const Region& region, std::string_view name) {
  return siphash24(region.hash_seed(0), region.hash_seed(1), name.data(), name.size());
}

}  // namespace hostchanfs::shm::persist::store
