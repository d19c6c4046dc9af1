// A daemon that attaches refuses a store it cannot trust, with one line naming what is
// wrong: each test damages a real store in one way (through the persistence layer, as a
// bug would, or by scribbling over its bytes, as a stray write would) and asserts the
// refusal and its line.
#include <sys/mman.h>

#include <cstring>
#include <functional>

#include <gmock/gmock.h>

#include "shm/directory.hpp"
#include "shm/inode_table.hpp"
#include "shm/layout.hpp"
#include "shm/page_map.hpp"
#include "shm/persist/store_schema.hpp"
#include "shm/persist/tx.hpp"
#include "tests/shm/crash_fixture.hpp"

namespace hostchanfs::shm::testing {
namespace {

namespace rec = persist::store;
using persist::Tx;
using ::testing::HasSubstr;

const Caller kRoot{0, 0, true};

// /d/f (two pages, an xattr), /g, /l (a long symlink).
StoreFiles populated() {
  return StoreFiles::make(StoreOptions{.size_bytes = 1 << 20}, [](Store& s) {
    Attr d = must(s.mkdir(kRootIno, "d", 0755, kRoot));
    Attr f = must(s.mknod(d.ino, "f", S_IFREG | 0644, 0, kRoot));
    must(s.write(f.ino, 0, bytes(std::string(2 * kPageSize, 'f')), kRoot));
    must(s.setxattr(f.ino, "user.a", bytes("1"), 0));
    must(s.mknod(kRootIno, "g", S_IFREG | 0644, 0, kRoot));
    must(s.symlink(kRootIno, "l", std::string(200, 'L'), kRoot));
  });
}

// A change to the store's region in one tx, as a buggy process would commit it.
void damage(const StoreFiles& f, const std::function<void(persist::Region&, Tx&)>& change) {
  auto region = persist::Region::attach(dup_fd(f.meta.get()), {f.data.get()}, store_schema(1, 1));
  ASSERT_TRUE(region) << region.error().what;
  Tx tx(*region.value());
  change(*region.value(), tx);
  tx.commit();
}

// The refusal's line, or "" when the store was accepted.
std::string refusal(const StoreFiles& f, std::errc want = static_cast<std::errc>(EUCLEAN)) {
  std::string why;
  auto s = f.attach(&why);
  if (s) return "";
  EXPECT_EQ(s.error(), want) << why;
  EXPECT_EQ(why.find('\n'), std::string::npos) << "one line";
  return why;
}

InodeRecord& record(persist::Region& r, Ino ino) { return *InodeTable(r).find(ino); }
Ino ino_of(persist::Region& r, Ino dir, std::string_view name) {
  Directory dirs(r);
  return dirs.entry(*dirs.find(dir, name)).ino;
}

TEST(AttachRefuses, AnUndamagedStore) {
  StoreFiles f = populated();
  EXPECT_EQ(refusal(f), "");
}

TEST(AttachRefuses, AWrongLinkCount) {
  StoreFiles f = populated();
  damage(f, [](persist::Region& r, Tx& tx) { tx.set(record(r, ino_of(r, kRootIno, "g")).nlink, std::uint32_t{2}); });
  EXPECT_THAT(refusal(f), HasSubstr("has nlink 2 but 1 names"));
}

TEST(AttachRefuses, AnEntryNamingAFreeInode) {
  StoreFiles f = populated();
  damage(f, [](persist::Region& r, Tx& tx) {
    Directory dirs(r);
    auto slot = *dirs.find(kRootIno, "g");
    dirs.retarget(tx, slot, 40, S_IFREG);
  });
  EXPECT_THAT(refusal(f), HasSubstr("entry 'g' of directory 1 names inode 40, which is free"));
}

TEST(AttachRefuses, AnEntryMissingFromTheNameIndex) {
  StoreFiles f = populated();
  damage(f, [](persist::Region& r, Tx& tx) {
    Directory dirs(r);
    auto slot = *dirs.find(kRootIno, "g");
    rec::NameTree names(r, rec::kDirByName);
    names.erase(tx, rec::name_key(kRootIno, rec::name_hash(r, "g"), slot));
  });
  EXPECT_THAT(refusal(f), HasSubstr("entry 'g' of directory 1 is not in the name index"));
}

TEST(AttachRefuses, AQuotaCounterThatDoesNotAddUp) {
  StoreFiles f = populated();
  damage(f, [](persist::Region& r, Tx& tx) {
    auto& sb = r.user_as<rec::Superblock>();
    tx.set(sb.pages_used, sb.pages_used + 1);
  });
  EXPECT_THAT(refusal(f), HasSubstr("pages_used is 5, but the inodes and write intents hold 4"));
}

TEST(AttachRefuses, AnInodeCountThatDoesNotAddUp) {
  StoreFiles f = populated();
  damage(f, [](persist::Region& r, Tx& tx) {
    auto& sb = r.user_as<rec::Superblock>();
    tx.set(sb.inodes_used, sb.inodes_used - 1);
  });
  EXPECT_THAT(refusal(f), HasSubstr("inodes_used is 4, but 5 inodes and hard links are charged"));
}

TEST(AttachRefuses, ADataPageOwnedTwice) {
  StoreFiles f = populated();
  damage(f, [](persist::Region& r, Tx& tx) {
    PageMap pages(r);
    Ino file = ino_of(r, ino_of(r, kRootIno, "d"), "f");
    std::uint32_t page = *pages.find(file, rec::kFileFork, 0);
    ASSERT_TRUE(pages.insert(tx, ino_of(r, kRootIno, "g"), rec::kFileFork, 7, page));
    InodeRecord& g = record(r, ino_of(r, kRootIno, "g"));
    tx.set(g.pages_held, std::uint64_t{1});
    auto& sb = r.user_as<rec::Superblock>();
    tx.set(sb.pages_used, sb.pages_used + 1);
  });
  EXPECT_THAT(refusal(f), HasSubstr("of pool data is used twice"));
}

TEST(AttachRefuses, AFileHoldingMorePagesThanItsMapGivesIt) {
  StoreFiles f = populated();
  damage(f, [](persist::Region& r, Tx& tx) {
    InodeRecord& g = record(r, ino_of(r, kRootIno, "g"));
    tx.set(g.pages_held, std::uint64_t{3});
    auto& sb = r.user_as<rec::Superblock>();
    tx.set(sb.pages_used, sb.pages_used + 3);
  });
  EXPECT_THAT(refusal(f), HasSubstr("holds 3 pages, the page map gives it 0"));
}

TEST(AttachRefuses, ADirectorySizeThatDoesNotMatchItsEntries) {
  StoreFiles f = populated();
  damage(f, [](persist::Region& r, Tx& tx) { tx.set(record(r, kRootIno).size, std::uint64_t{40}); });
  EXPECT_THAT(refusal(f), HasSubstr("inode 1 has size 40 for 3 entries"));
}

// A stray write, not a tx: the bytes of a tree node's header.
TEST(AttachRefuses, AScribbledTreeNode) {
  StoreFiles f = populated();
  {
    auto region = persist::Region::attach(dup_fd(f.meta.get()), {f.data.get()}, store_schema(1, 1));
    ASSERT_TRUE(region);
    const persist::TreeDesc& t = region.value()->header().tree[rec::kPages];
    std::memset(region.value()->at(region.value()->header().arena_offset + t.root * persist::kPage), 0xee, 16);
  }
  EXPECT_THAT(refusal(f), HasSubstr("tree pages: node"));
}

TEST(AttachRefuses, AnotherLayoutVersionOrNoMagic) {
  StoreFiles f = populated();
  {
    auto region = persist::Region::attach(dup_fd(f.meta.get()), {f.data.get()}, store_schema(1, 1));
    ASSERT_TRUE(region);
    region.value()->header().user_version = rec::kLayoutVersion + 1;
  }
  EXPECT_THAT(refusal(f, std::errc::protocol_error), HasSubstr("layout version"));
  {
    auto map = must(Mapping::map_shared(f.meta.get(), persist::kPage));
    std::memset(map.data(), 0, 8);
  }
  EXPECT_THAT(refusal(f, std::errc::protocol_error), HasSubstr("no magic"));
}

TEST(AttachRefuses, ADataMemfdOfAnotherSize) {
  StoreFiles f = populated();
  ASSERT_EQ(::ftruncate(f.data.get(), 2 << 20), 0);
  EXPECT_THAT(refusal(f, std::errc::protocol_error), HasSubstr("the data memfd is 2097152 bytes"));
}

}  // namespace
}  // namespace hostchanfs::shm::testing
