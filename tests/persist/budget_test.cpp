// The memory bound of the store's schema (store_schema.hpp): the meta memfd's size, which
// no workload can exceed, stays within issue 15's 20% of the quota + 16 MiB at the default
// inode density; and a region filled the worst way (every slot, 255-byte names, trees at
// their most entries and then thinned to half-full nodes) never runs out of room and never
// holds more memory than that size.
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <random>

#include <gtest/gtest.h>

#include "shm/persist/store_schema.hpp"
#include "sys/memfd.hpp"

namespace hostchanfs::shm::persist::store {
namespace {

TEST(Budget, TheMetaRegionStaysWithinTwentyPercentPlusSixteenMiB) {
  for (std::uint64_t quota : {1ull, 255ull, 1024ull, 8192ull, 16384ull, 262144ull, 1ull << 24, 1ull << 28}) {
    std::uint64_t inodes = default_max_inodes(quota);
    std::uint64_t bytes = meta_bytes(quota, inodes);
    EXPECT_LE(bytes, meta_limit(quota)) << quota << " pages";
    std::printf("quota %12llu KiB  inodes %10llu  meta %10.1f MiB  limit %10.1f MiB  (%.1f%% of the quota)\n",
                static_cast<unsigned long long>(quota * 4), static_cast<unsigned long long>(inodes),
                static_cast<double>(bytes) / (1 << 20), static_cast<double>(meta_limit(quota)) / (1 << 20),
                100.0 * static_cast<double>(bytes) / static_cast<double>(quota * kPage));
  }
}

// The formula in store_schema.hpp: fixed part, per inode, per quota page.
TEST(Budget, TheFormulaMatchesTheRegionSize) {
  const std::uint64_t q = 1 << 20, i = 1 << 20, step = 1 << 16;
  double per_inode = static_cast<double>(meta_bytes(q, i + step) - meta_bytes(q, i)) / step;
  double per_page = static_cast<double>(meta_bytes(q + step, i) - meta_bytes(q, i)) / step;
  double fixed = static_cast<double>(meta_bytes(q, i)) - per_inode * i - per_page * q;
  std::printf("meta = %.2f MiB + %.1f B per inode + %.1f B per quota page\n", fixed / (1 << 20), per_inode, per_page);
  EXPECT_NEAR(per_inode, 647, 5);
  EXPECT_NEAR(per_page, 36.6, 1);
  EXPECT_LT(fixed, 3 << 20);
  EXPECT_LE((per_inode + per_page) / kPage, 0.17);
}

TEST(Budget, SipHashMatchesTheReferenceVectors) {
  // From the SipHash paper: key 00 01 .. 0f; messages 00 01 .. (n-1).
  std::uint64_t k0 = 0x0706050403020100ull, k1 = 0x0f0e0d0c0b0a0908ull;
  unsigned char msg[15];
  for (int i = 0; i < 15; ++i) msg[i] = static_cast<unsigned char>(i);
  EXPECT_EQ(siphash24(k0, k1, msg, 0), 0x726fdb47dd0e0e31ull);
  EXPECT_EQ(siphash24(k0, k1, msg, 15), 0xa129ca6149be45e5ull);
}

std::uint64_t resident(int fd) {
  struct stat st {};
  ::fstat(fd, &st);
  return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

// Fill a small store's region the worst way; nothing runs out, and its memory stays
// within the region's size (the bound).
TEST(Budget, AWorstCaseFillFitsAndStaysWithinTheBound) {
  const std::uint64_t quota = 256, inodes = default_max_inodes(quota);  // 1 MiB, 1024 inodes
  Schema s = schema(quota, inodes);
  UniqueFd meta(make_memfd("budget-meta", 0).value());
  UniqueFd data(make_memfd("budget-data", quota * kPage).value());
  int meta_fd = meta.get();
  s.check = [](const Region& r, CheckContext& ctx) {
    PageTree pages(r, kPages);
    for (auto c = pages.begin(); c.valid(); c.next()) ctx.use_page(kDataPool, c.value() & ~kUnwritten, "page map");
  };
  auto created = Region::create(std::move(meta), {data.get()}, s);
  ASSERT_TRUE(created) << created.error().what;
  Region& r = *created.value();
  SlotTable inode_table(r, kInodes), dirent_table(r, kDirents);
  PagePool data_pool(r, kDataPool);
  PageTree pages(r, kPages);
  CookieTree by_cookie(r, kDirByCookie);
  NameTree by_name(r, kDirByName);
  std::mt19937_64 rng(11);

  // Every inode and dirent slot, 255-byte names, every name in a directory of its own
  // (the keys spread over the whole tree), every dedupe slot of the superblock's ring.
  for (std::uint64_t i = 0; i < inodes; i += 64) {
    Tx tx(r);
    for (std::uint64_t j = i; j < std::min(inodes, i + 64); ++j) {
      auto ino = inode_table.alloc(tx);
      auto slot = dirent_table.alloc(tx);
      ASSERT_TRUE(ino && slot);
      DirentRecord d{};
      d.dir = static_cast<std::uint32_t>(j);
      d.ino = *ino;
      d.name_len = 255;
      std::memset(d.name, 'a' + static_cast<int>(j % 26), 255);
      tx.fresh(dirent_table.slot(*slot), &d, sizeof d);
      std::uint64_t h = name_hash(r, std::string_view(d.name, 255));
      const DirCookieKey cookie{d.dir, 0, 3};
      const DirNameKey named{d.dir, static_cast<std::uint32_t>(h >> 32), static_cast<std::uint32_t>(h), *slot};
      ASSERT_TRUE(by_cookie.insert(tx, cookie, *slot).value());
      ASSERT_TRUE(by_name.insert(tx, named, Empty{}).value());
    }
    tx.commit();
  }
  for (std::uint64_t i = 0; i < kDedupeSlots; i += 256) {
    Tx tx(r);
    auto& sb = r.user_as<Superblock>();
    for (std::uint64_t j = i; j < i + 256; ++j) {
      tx.set(sb.dedupe_unique[j], rng() | 1);
      tx.set(sb.dedupe[j], Outcome{1, 0, j, 0, 0});
    }
    tx.commit();
  }
  // Every quota page, each one page of its own file at a random high index.
  {
    Tx tx(r);
    for (std::uint64_t p = 0; p < quota; ++p) {
      auto page = data_pool.alloc(tx);
      ASSERT_TRUE(page);
      ASSERT_TRUE(pages.insert(tx, page_key(static_cast<std::uint32_t>(p), 0, rng() >> 13), *page).value());
    }
    tx.commit();
  }
  EXPECT_EQ(dirent_table.live_count(), dirent_table.capacity());
  EXPECT_EQ(data_pool.in_use(), quota);
  auto full = r.check();
  ASSERT_TRUE(full) << full.error().what;
  // Thin every tree to half-full nodes (every other entry), then fill it again: the worst
  // shape fill bounds allow, twice over.
  auto thin = [&](auto& tree, auto& model_keys) {
    for (std::size_t i = 0; i < model_keys.size(); i += 2) {
      Tx tx(r);
      ASSERT_TRUE(tree.erase(tx, model_keys[i]));
      tx.commit();
    }
  };
  std::vector<DirCookieKey> cookie_keys;
  for (auto c = by_cookie.begin(); c.valid(); c.next()) cookie_keys.push_back(c.key());
  std::vector<DirNameKey> name_keys;
  for (auto c = by_name.begin(); c.valid(); c.next()) name_keys.push_back(c.key());
  ASSERT_NO_FATAL_FAILURE(thin(by_cookie, cookie_keys));
  ASSERT_NO_FATAL_FAILURE(thin(by_name, name_keys));
  for (std::size_t i = 0; i < cookie_keys.size(); i += 2) {
    Tx tx(r);
    DirCookieKey k = cookie_keys[i];
    k.cookie_lo = 4;  // a new cookie in the same directory
    ASSERT_TRUE(by_cookie.insert(tx, k, 0).value());
    ASSERT_TRUE(by_name.insert(tx, name_keys[i], Empty{}).value());
    tx.commit();
  }
  ASSERT_LE(by_cookie.nodes(), by_cookie.max_nodes());
  auto again = r.check(CheckLevel::kDeep);
  ASSERT_TRUE(again) << again.error().what;
  std::uint64_t bytes = resident(meta_fd);
  std::printf("worst-case fill: %.2f MiB resident of a %.2f MiB region (limit %.2f MiB)\n",
              static_cast<double>(bytes) / (1 << 20), static_cast<double>(r.size()) / (1 << 20),
              static_cast<double>(meta_limit(quota)) / (1 << 20));
  EXPECT_LE(bytes, r.size());
  EXPECT_LE(r.size(), meta_limit(quota));
}

}  // namespace
}  // namespace hostchanfs::shm::persist::store
