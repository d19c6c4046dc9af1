// The namespace: lookup counts, attributes, node kinds, directories, symlinks, hard links,
// rename, readdir offsets, limits and the ownership rules the store applies itself.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <map>
#include <set>

#include "tests/shm/store_fixture.hpp"

// For EXPECT_EQ on times (found by argument-dependent lookup, so global like timespec).
inline bool operator==(const timespec& a, const timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}
inline std::ostream& operator<<(std::ostream& os, const timespec& t) {
  return os << t.tv_sec << "." << t.tv_nsec;
}

namespace hostchanfs::shm::testing {
namespace {

using NamesTest = StoreTest;

bool later(const timespec& a, const timespec& b) {
  return a.tv_sec > b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec > b.tv_nsec);
}
timespec ts(time_t s, long ns) { return timespec{s, ns}; }

// --- lookup and the kernel's lookup count ------------------------------------------------

TEST_F(NamesTest, LookupResolvesNamesDotAndDotDot) {
  Attr d = make_dir(kRootIno, "d");
  Attr f = create(d.ino, "f");
  EXPECT_EQ(must(peek(kRootIno, "d")).ino, d.ino);
  EXPECT_EQ(must(peek(d.ino, "f")).ino, f.ino);
  EXPECT_EQ(must(peek(d.ino, ".")).ino, d.ino);
  EXPECT_EQ(must(peek(d.ino, "..")).ino, kRootIno);
  EXPECT_EQ(must(peek(kRootIno, "..")).ino, kRootIno);
  EXPECT_TRUE(Fails(s().lookup(d.ino, "missing"), ENOENT));
  EXPECT_TRUE(Fails(s().lookup(f.ino, "x"), ENOTDIR));
  EXPECT_TRUE(Fails(s().lookup(kRootIno, std::string(256, 'n')), ENAMETOOLONG));
}

// With no name and no open handle left, tmpfs gives the space and the inode count back at
// once; the kernel may still ask about the inode until it forgets it, so the slot (and its
// number) stays until the last lookup is forgotten.
TEST_F(NamesTest, UnlinkedInodeLivesUntilEveryLookupIsForgotten) {
  Attr f = must(s().mknod(kRootIno, "f", S_IFREG | 0644, 0, root_caller()));  // lookups: 1
  ASSERT_TRUE(Ok(s().lookup(kRootIno, "f")));                                 // 2
  ASSERT_TRUE(Ok(s().lookup(kRootIno, "f")));                                 // 3
  ASSERT_EQ(must(write(f.ino, 0, "data")), 4u);
  EXPECT_EQ(s().inodes_used(), 2u);
  EXPECT_EQ(s().pages_used(), 1u);
  ASSERT_TRUE(Ok(s().unlink(kRootIno, "f")));
  EXPECT_TRUE(Fails(s().lookup(kRootIno, "f"), ENOENT));
  EXPECT_EQ(s().pages_used(), 0u);
  EXPECT_EQ(s().inodes_used(), 1u);
  EXPECT_EQ(attr(f.ino).nlink, 0u);
  s().forget(f.ino, 2);
  EXPECT_EQ(attr(f.ino).generation, f.generation);
  s().forget(f.ino, 1);
  EXPECT_FALSE(s().getattr(f.ino));
  EXPECT_EQ(s().pages_used(), 0u);
  EXPECT_EQ(s().inodes_used(), 1u);
  // The slot is free again: the store can fill every inode it has.
  for (std::uint64_t i = 1; i < s().max_inodes(); ++i) create(kRootIno, "n" + std::to_string(i));
  EXPECT_TRUE(Fails(s().mknod(kRootIno, "x", S_IFREG | 0644, 0, root_caller()), ENOSPC));
}

// An unlink and a rename that replaces a name say which inode lost a link (--charge
// writer removes its backing file by it); nothing else does, and neither does a resend.
TEST_F(NamesTest, UnlinkAndARenameOverANameSayWhichInodeLostALink) {
  Attr f = create(kRootIno, "f");
  Attr g = create(kRootIno, "g");
  Attr h = create(kRootIno, "h");
  Attr d = make_dir(kRootIno, "d");
  Store::Unlinked lost;
  ASSERT_TRUE(Ok(s().unlink(kRootIno, "f", Request{50}, &lost)));
  EXPECT_EQ(lost.ino, f.ino);
  EXPECT_EQ(lost.generation, f.generation);
  EXPECT_EQ(lost.mode, f.mode);
  Store::Unlinked again;
  ASSERT_TRUE(Ok(s().unlink(kRootIno, "f", Request{50 | Request::kResend}, &again)));
  EXPECT_EQ(again.ino, 0u);
  Store::Unlinked replaced;
  ASSERT_TRUE(Ok(s().rename(kRootIno, "g", kRootIno, "h", 0, {}, root_caller(), &replaced)));
  EXPECT_EQ(replaced.ino, h.ino);
  EXPECT_EQ(replaced.generation, h.generation);
  Store::Unlinked none;
  ASSERT_TRUE(Ok(s().rename(kRootIno, "h", kRootIno, "fresh", 0, {}, root_caller(), &none)));
  ASSERT_TRUE(Ok(s().rename(kRootIno, "fresh", kRootIno, "d", RENAME_EXCHANGE, {}, root_caller(), &none)));
  EXPECT_EQ(none.ino, 0u);
  EXPECT_TRUE(Fails(s().unlink(kRootIno, "fresh", {}, &none), EISDIR));  // d, swapped in
  EXPECT_EQ(none.ino, 0u);
  EXPECT_EQ(must(peek(kRootIno, "d")).ino, g.ino);
  EXPECT_EQ(must(peek(kRootIno, "fresh")).ino, d.ino);
}

// The kernel writes only through open files, but the store must not leak whatever an
// inode gains after its charge went back: freeing the slot returns it all.
TEST_F(NamesTest, FreeingAnUnlinkedInodeReturnsPagesGainedAfterUnlink) {
  Attr f = must(s().mknod(kRootIno, "f", S_IFREG | 0644, 0, root_caller()));
  ASSERT_TRUE(Ok(write(f.ino, 0, "before")));
  ASSERT_TRUE(Ok(s().unlink(kRootIno, "f")));
  (void)write(f.ino, 0, std::string(3 * kPageSize, 'a'));
  (void)s().setxattr(f.ino, "user.x", bytes("v"), 0);
  s().forget(f.ino, 1);
  EXPECT_EQ(s().pages_used(), 0u);
  EXPECT_EQ(s().inodes_used(), 1u);
  // Every page is usable again.
  Attr g = create(kRootIno, "g");
  EXPECT_EQ(must(write(g.ino, 0, std::string(kMiB, 'g'))), kMiB);
}

TEST_F(NamesTest, EveryCreatingCallCountsOneLookup) {
  Attr d = must(s().mkdir(kRootIno, "d", 0755, root_caller()));
  Attr f = must(s().mknod(d.ino, "f", S_IFREG | 0644, 0, root_caller()));
  Attr l = must(s().symlink(d.ino, "l", "f", root_caller()));
  Attr h = must(s().link(f.ino, d.ino, "h"));  // f now has 2 lookups
  ASSERT_TRUE(Ok(s().unlink(d.ino, "f")));
  ASSERT_TRUE(Ok(s().unlink(d.ino, "h")));
  ASSERT_TRUE(Ok(s().unlink(d.ino, "l")));
  ASSERT_TRUE(Ok(s().rmdir(kRootIno, "d")));
  for (Ino i : {d.ino, f.ino, l.ino}) EXPECT_TRUE(Ok(s().getattr(i)));
  s().forget(d.ino, 1);
  s().forget(l.ino, 1);
  s().forget(f.ino, 1);
  EXPECT_TRUE(Ok(s().getattr(f.ino)));  // the link's lookup is still held
  s().forget(h.ino, 1);
  for (Ino i : {d.ino, f.ino, l.ino}) EXPECT_FALSE(s().getattr(i));
  EXPECT_EQ(s().inodes_used(), 1u);
}

TEST_F(NamesTest, ReaddirPlusCountsLookupsAndPlainReaddirDoesNot) {
  Attr f = create(kRootIno, "f");
  std::size_t seen = 0;
  ASSERT_TRUE(Ok(s().readdir(kRootIno, 0, true, [&](const DirEntry& e, const Attr* a) {
    EXPECT_NE(a, nullptr);
    if (a && e.name == "f") {
      EXPECT_EQ(a->ino, f.ino);
    }
    ++seen;
    return true;
  })));
  EXPECT_EQ(seen, 3u);  // ".", "..", "f"
  ASSERT_TRUE(Ok(s().unlink(kRootIno, "f")));
  EXPECT_TRUE(Ok(s().getattr(f.ino)));  // readdirplus's lookup keeps it
  s().forget(f.ino, 1);
  EXPECT_FALSE(s().getattr(f.ino));

  Attr g = create(kRootIno, "g");
  list(kRootIno);
  ASSERT_TRUE(Ok(s().unlink(kRootIno, "g")));
  EXPECT_FALSE(s().getattr(g.ino));
}

TEST_F(NamesTest, ReaddirPlusCountsOnlyConsumedEntries) {
  Attr a = create(kRootIno, "a");
  Attr b = create(kRootIno, "b");
  // Take ".", "..", and one more; refuse the next.
  std::vector<Ino> taken;
  ASSERT_TRUE(Ok(s().readdir(kRootIno, 0, true, [&](const DirEntry& e, const Attr*) {
    if (taken.size() == 3) return false;
    taken.push_back(e.ino);
    return true;
  })));
  ASSERT_EQ(taken.size(), 3u);
  Ino consumed = taken[2];
  Ino refused = consumed == a.ino ? b.ino : a.ino;
  ASSERT_TRUE(Ok(s().unlink(kRootIno, "a")));
  ASSERT_TRUE(Ok(s().unlink(kRootIno, "b")));
  EXPECT_TRUE(Ok(s().getattr(consumed)));
  EXPECT_FALSE(s().getattr(refused));
  s().forget(consumed, 1);
  EXPECT_EQ(s().inodes_used(), 1u);
}

// --- attributes ---------------------------------------------------------------------------

TEST_F(NamesTest, NewFileAttributes) {
  Attr f = create(kRootIno, "f", S_IFREG | 0640, user_caller(1000, 2000));
  EXPECT_EQ(f.mode, S_IFREG | 0640u);
  EXPECT_EQ(f.nlink, 1u);
  EXPECT_EQ(f.uid, 1000u);
  EXPECT_EQ(f.gid, 2000u);
  EXPECT_EQ(f.size, 0u);
  EXPECT_EQ(f.blocks, 0u);
  EXPECT_EQ(f.atime, f.mtime);
  EXPECT_EQ(f.mtime, f.ctime);
  struct stat st = f.to_stat();
  EXPECT_EQ(st.st_ino, f.ino);
  EXPECT_EQ(st.st_mode, f.mode);
  Attr r = attr(kRootIno);
  EXPECT_EQ(r.mode, S_IFDIR | 01777u);
  EXPECT_EQ(r.ino, kRootIno);
}

TEST_F(NamesTest, StoreOptionsSetTheRoot) {
  reset_store(StoreOptions{.size_bytes = kMiB, .root_uid = 7, .root_gid = 8, .root_mode = 0750});
  Attr r = attr(kRootIno);
  EXPECT_EQ(r.mode, S_IFDIR | 0750u);
  EXPECT_EQ(r.uid, 7u);
  EXPECT_EQ(r.gid, 8u);
  EXPECT_EQ(r.nlink, 2u);
}

TEST_F(NamesTest, SetattrModeOwnerAndTimesWithNanoseconds) {
  Attr f = create(kRootIno, "f");
  AttrChange c;
  c.mode = 0600 | S_IFDIR;  // the type never changes
  c.uid = 11;
  c.gid = 12;
  c.atime = {TimeChange::Kind::kSet, ts(1'000, 123)};
  c.mtime = {TimeChange::Kind::kSet, ts(2'000, 999'999'999)};
  Attr a = must(set(f.ino, c));
  EXPECT_EQ(a.mode, S_IFREG | 0600u);
  EXPECT_EQ(a.uid, 11u);
  EXPECT_EQ(a.gid, 12u);
  EXPECT_EQ(a.atime, ts(1'000, 123));
  EXPECT_EQ(a.mtime, ts(2'000, 999'999'999));
  EXPECT_TRUE(later(a.ctime, ts(2'000, 999'999'999)));  // ctime is now
  EXPECT_EQ(attr(f.ino).atime, ts(1'000, 123));

  // UTIME_OMIT leaves a time alone, UTIME_NOW sets the current time.
  AttrChange now;
  now.mtime = {TimeChange::Kind::kNow, {}};
  Attr b = must(set(f.ino, now));
  EXPECT_EQ(b.atime, ts(1'000, 123));
  EXPECT_TRUE(later(b.mtime, ts(2'000, 999'999'999)));

  AttrChange ctime_only;
  ctime_only.ctime = ts(3'000, 5);
  Attr c2 = must(set(f.ino, ctime_only));
  EXPECT_EQ(c2.ctime, ts(3'000, 5));
  EXPECT_EQ(c2.atime, ts(1'000, 123));
  EXPECT_EQ(c2.mtime, b.mtime);
}

// relatime: a read moves atime when it is not after mtime and ctime, or a day old; it
// leaves an atime in the future, and a fresh one, alone.
TEST_F(NamesTest, AccessedAppliesRelatime) {
  Attr f = create(kRootIno, "f");
  EXPECT_TRUE(must(s().accessed(f.ino)));  // a new file: atime == mtime == ctime
  const timespec first = attr(f.ino).atime;
  EXPECT_TRUE(later(first, attr(f.ino).mtime));
  EXPECT_FALSE(must(s().accessed(f.ino)));
  EXPECT_EQ(attr(f.ino).atime, first);
  AttrChange old;
  old.atime = {TimeChange::Kind::kSet, ts(978307200, 0)};
  old.ctime = ts(978307100, 0);  // older than atime: only the day rule applies
  old.mtime = {TimeChange::Kind::kSet, ts(978307100, 0)};
  must(set(f.ino, old));
  EXPECT_TRUE(must(s().accessed(f.ino)));
  EXPECT_TRUE(later(attr(f.ino).atime, first));
  const Attr before = attr(f.ino);
  EXPECT_EQ(before.ctime, ts(978307100, 0)) << "an atime update is not a change of the inode";
  AttrChange future;
  future.atime = {TimeChange::Kind::kSet, ts(4102444800, 0)};
  must(set(f.ino, future));
  EXPECT_FALSE(must(s().accessed(f.ino)));
  EXPECT_EQ(attr(f.ino).atime, ts(4102444800, 0));
  EXPECT_TRUE(must(s().accessed(make_dir(kRootIno, "d").ino)));
  EXPECT_TRUE(Fails(s().accessed(9999), ESTALE));
}

TEST_F(NamesTest, SetattrSizeRulesAreAllOrNothing) {
  Attr d = make_dir(kRootIno, "d");
  AttrChange c;
  c.mode = 0700;
  c.size = 0;
  EXPECT_TRUE(Fails(set(d.ino, c), EISDIR));
  EXPECT_EQ(attr(d.ino).mode, S_IFDIR | 0755u);
  Attr f = create(kRootIno, "f");
  c.size = kMaxFileSize + 1;
  EXPECT_TRUE(Fails(set(f.ino, c), EFBIG));
  EXPECT_EQ(attr(f.ino).mode, S_IFREG | 0644u);
  c.size = kMaxFileSize;
  EXPECT_EQ(must(set(f.ino, c)).size, kMaxFileSize);
}

TEST_F(NamesTest, WritesAndCreatesUpdateTimes) {
  Attr d = make_dir(kRootIno, "d");
  AttrChange old;
  old.atime = {TimeChange::Kind::kSet, ts(1, 0)};
  old.mtime = {TimeChange::Kind::kSet, ts(1, 0)};
  old.ctime = ts(1, 0);
  ASSERT_TRUE(Ok(set(d.ino, old)));
  Attr f = create(d.ino, "f");
  Attr da = attr(d.ino);
  EXPECT_TRUE(later(da.mtime, ts(1, 0)));
  EXPECT_TRUE(later(da.ctime, ts(1, 0)));
  ASSERT_TRUE(Ok(set(f.ino, old)));
  ASSERT_TRUE(Ok(write(f.ino, 0, "x")));
  Attr fa = attr(f.ino);
  EXPECT_TRUE(later(fa.mtime, ts(1, 0)));
  EXPECT_TRUE(later(fa.ctime, ts(1, 0)));
  EXPECT_EQ(fa.atime, ts(1, 0));
}

// --- node kinds ---------------------------------------------------------------------------

TEST_F(NamesTest, MknodMakesEveryKind) {
  struct Kind {
    const char* name;
    mode_t mode;
    dev_t rdev;
  };
  for (const Kind& k : {Kind{"reg", S_IFREG | 0644, 0}, Kind{"fifo", S_IFIFO | 0600, 0},
                        Kind{"sock", S_IFSOCK | 0755, 0},
                        Kind{"chr", S_IFCHR | 0666, makedev(1, 3)},
                        Kind{"blk", S_IFBLK | 0660, makedev(8, 1)}}) {
    SCOPED_TRACE(k.name);
    Attr a = create(kRootIno, k.name, k.mode, root_caller(), k.rdev);
    EXPECT_EQ(a.mode, k.mode);
    EXPECT_EQ(a.rdev, k.rdev);
    EXPECT_EQ(a.size, 0u);
    EXPECT_EQ(a.nlink, 1u);
    EXPECT_EQ(attr(a.ino).rdev, k.rdev);
  }
  std::map<std::string, mode_t> types;
  for (auto& e : list(kRootIno)) types[e.name] = e.mode & S_IFMT;
  EXPECT_EQ(types["fifo"], S_IFIFO);
  EXPECT_EQ(types["sock"], S_IFSOCK);
  EXPECT_EQ(types["chr"], S_IFCHR);
  EXPECT_EQ(types["blk"], S_IFBLK);
  EXPECT_EQ(types["reg"], S_IFREG);
  EXPECT_EQ(types["."], S_IFDIR);
  // Device nodes are metadata only: no data operations.
  Attr chr = must(peek(kRootIno, "chr"));
  EXPECT_FALSE(write(chr.ino, 0, "x"));
  EXPECT_FALSE(read_result(chr.ino, 0, 1));
}

TEST_F(NamesTest, MknodErrors) {
  Attr f = create(kRootIno, "f");
  EXPECT_TRUE(Fails(s().mknod(kRootIno, "f", S_IFREG | 0644, 0, root_caller()), EEXIST));
  EXPECT_TRUE(Fails(s().mkdir(kRootIno, "f", 0755, root_caller()), EEXIST));
  EXPECT_TRUE(Fails(s().symlink(kRootIno, "f", "t", root_caller()), EEXIST));
  EXPECT_TRUE(Fails(s().mknod(f.ino, "g", S_IFREG | 0644, 0, root_caller()), ENOTDIR));
  EXPECT_TRUE(Fails(s().mknod(kRootIno, "", S_IFREG | 0644, 0, root_caller()), ENOENT));
  EXPECT_EQ(s().inodes_used(), 2u);
}

TEST_F(NamesTest, Names255AreFine256AreTooLong) {
  std::string n255(255, 'n'), n256(256, 'n');
  Attr f = create(kRootIno, n255);
  EXPECT_EQ(must(peek(kRootIno, n255)).ino, f.ino);
  EXPECT_EQ(names(kRootIno), std::vector<std::string>{n255});
  EXPECT_TRUE(Fails(s().mknod(kRootIno, n256, S_IFREG | 0644, 0, root_caller()), ENAMETOOLONG));
  EXPECT_TRUE(Fails(s().mkdir(kRootIno, n256, 0755, root_caller()), ENAMETOOLONG));
  EXPECT_TRUE(Fails(s().symlink(kRootIno, n256, "t", root_caller()), ENAMETOOLONG));
  EXPECT_TRUE(Fails(s().link(f.ino, kRootIno, n256), ENAMETOOLONG));
  EXPECT_TRUE(Fails(s().rename(kRootIno, n255, kRootIno, n256, 0), ENAMETOOLONG));
  EXPECT_TRUE(Fails(s().unlink(kRootIno, n256), ENAMETOOLONG));
  EXPECT_TRUE(Ok(s().rename(kRootIno, n255, kRootIno, std::string(255, 'm'), 0)));
  EXPECT_EQ(s().inodes_used(), 2u);
}

// --- directories --------------------------------------------------------------------------

TEST_F(NamesTest, MkdirRmdirLinkCountsAndSizes) {
  Attr d = make_dir(kRootIno, "d", 0700);
  EXPECT_EQ(d.mode, S_IFDIR | 0700u);
  EXPECT_EQ(d.nlink, 2u);
  EXPECT_EQ(d.size, 40u);  // tmpfs: 20 bytes per entry, "." and ".." included
  EXPECT_EQ(attr(kRootIno).nlink, 3u);
  make_dir(d.ino, "sub");
  create(d.ino, "f");
  EXPECT_EQ(attr(d.ino).nlink, 3u);
  EXPECT_EQ(attr(d.ino).size, 80u);
  EXPECT_EQ(attr(d.ino).blocks, 0u);
  EXPECT_TRUE(Fails(s().rmdir(kRootIno, "d"), ENOTEMPTY));
  EXPECT_TRUE(Fails(s().rmdir(d.ino, "f"), ENOTDIR));
  EXPECT_TRUE(Fails(s().unlink(d.ino, "sub"), EISDIR));
  EXPECT_TRUE(Fails(s().rmdir(d.ino, "missing"), ENOENT));
  EXPECT_TRUE(Fails(s().unlink(d.ino, "missing"), ENOENT));
  ASSERT_TRUE(Ok(s().rmdir(d.ino, "sub")));
  ASSERT_TRUE(Ok(s().unlink(d.ino, "f")));
  EXPECT_EQ(attr(d.ino).nlink, 2u);
  EXPECT_EQ(attr(d.ino).size, 40u);
  ASSERT_TRUE(Ok(s().rmdir(kRootIno, "d")));
  EXPECT_EQ(attr(kRootIno).nlink, 2u);
  EXPECT_EQ(s().inodes_used(), 1u);
  EXPECT_TRUE(Fails(s().lookup(kRootIno, "d"), ENOENT));
}

TEST_F(NamesTest, RmdirOfDotAndDotDot) {
  Attr d = make_dir(kRootIno, "d");
  EXPECT_TRUE(Fails(s().rmdir(d.ino, "."), EINVAL));
  EXPECT_TRUE(Fails(s().rmdir(d.ino, ".."), ENOTEMPTY));
}

// A directory removed while the kernel still holds it (someone's cwd): nothing new can be
// made or moved inside it, as on tmpfs (ENOENT); listing it still works.
TEST_F(NamesTest, NothingCanBeCreatedInARemovedDirectory) {
  Attr d = must(s().mkdir(kRootIno, "d", 0755, root_caller()));  // the lookup stays held
  Attr f = create(kRootIno, "f");
  ASSERT_TRUE(Ok(s().rmdir(kRootIno, "d")));
  const std::uint64_t inodes = s().inodes_used();
  EXPECT_TRUE(Fails(s().mknod(d.ino, "x", S_IFREG | 0644, 0, root_caller()), ENOENT));
  EXPECT_TRUE(Fails(s().mkdir(d.ino, "x", 0755, root_caller()), ENOENT));
  EXPECT_TRUE(Fails(s().symlink(d.ino, "x", "t", root_caller()), ENOENT));
  EXPECT_TRUE(Fails(s().link(f.ino, d.ino, "x"), ENOENT));
  EXPECT_TRUE(Fails(s().rename(kRootIno, "f", d.ino, "x", 0), ENOENT));
  EXPECT_EQ(s().inodes_used(), inodes);
  EXPECT_EQ(must(peek(kRootIno, "f")).ino, f.ino);
  EXPECT_TRUE(names(d.ino).empty());
  s().forget(d.ino, 1);
  EXPECT_FALSE(s().getattr(d.ino));
  ASSERT_TRUE(Ok(s().unlink(kRootIno, "f")));
  EXPECT_EQ(s().inodes_used(), 1u);
}

TEST_F(NamesTest, ForgettingTheRootIsHarmless) {
  // The kernel holds one implicit reference on the root that no lookup reply counted.
  s().forget(kRootIno, 1);
  EXPECT_TRUE(Ok(s().getattr(kRootIno)));
  create(kRootIno, "f");
  EXPECT_EQ(names(kRootIno), std::vector<std::string>{"f"});
}

// --- symlinks -----------------------------------------------------------------------------

TEST_F(NamesTest, ShortSymlinksAreFreeLongOnesTakeAPage) {
  std::string t127(127, 'a'), t128(128, 'b');
  Attr shortl = make_symlink(kRootIno, "short", t127);
  EXPECT_EQ(shortl.mode, S_IFLNK | 0777u);
  EXPECT_EQ(shortl.size, 127u);
  EXPECT_EQ(shortl.blocks, 0u);
  EXPECT_EQ(s().pages_used(), 0u);
  Attr longl = make_symlink(kRootIno, "long", t128);
  EXPECT_EQ(longl.size, 128u);
  EXPECT_EQ(longl.blocks, 8u);
  EXPECT_EQ(s().pages_used(), 1u);
  EXPECT_EQ(s().statfs().blocks_free, 255u);
  EXPECT_EQ(must(s().readlink(shortl.ino)), t127);
  EXPECT_EQ(must(s().readlink(longl.ino)), t128);
  ASSERT_TRUE(Ok(s().unlink(kRootIno, "long")));
  EXPECT_EQ(s().pages_used(), 0u);
}

TEST_F(NamesTest, SymlinkLimitsAndReadlinkErrors) {
  Attr max = make_symlink(kRootIno, "max", std::string(kSymlinkMax, 'x'));
  EXPECT_EQ(must(s().readlink(max.ino)).size(), kSymlinkMax);
  EXPECT_TRUE(
      Fails(s().symlink(kRootIno, "over", std::string(kSymlinkMax + 1, 'x'), root_caller()),
            ENAMETOOLONG));
  Attr f = create(kRootIno, "f");
  EXPECT_TRUE(Fails(s().readlink(f.ino), EINVAL));
  EXPECT_TRUE(Fails(s().readlink(kRootIno), EINVAL));
}

TEST_F(NamesTest, LongSymlinkNeedsAFreePage) {
  Attr f = create(kRootIno, "f");
  ASSERT_EQ(must(write(f.ino, 0, std::string(kMiB, 'x'))), kMiB);
  std::uint64_t inodes = s().inodes_used();
  EXPECT_TRUE(Fails(s().symlink(kRootIno, "long", std::string(200, 'l'), root_caller()), ENOSPC));
  EXPECT_EQ(s().inodes_used(), inodes);
  EXPECT_TRUE(Fails(s().lookup(kRootIno, "long"), ENOENT));
  make_symlink(kRootIno, "short", "t");
}

// --- hard links ---------------------------------------------------------------------------

TEST_F(NamesTest, HardLinksShareTheInode) {
  Attr d = make_dir(kRootIno, "d");
  Attr f = create(kRootIno, "f");
  ASSERT_TRUE(Ok(write(f.ino, 0, "shared")));
  std::uint64_t ffree = s().statfs().files_free;
  Attr l = hard_link(f.ino, d.ino, "l");
  EXPECT_EQ(l.ino, f.ino);
  EXPECT_EQ(l.nlink, 2u);
  EXPECT_EQ(s().statfs().files_free, ffree - 1);  // tmpfs charges a hard link an inode
  EXPECT_EQ(must(peek(d.ino, "l")).ino, f.ino);
  EXPECT_TRUE(Fails(s().link(f.ino, d.ino, "l"), EEXIST));
  EXPECT_TRUE(Fails(s().link(d.ino, kRootIno, "dl"), EPERM));
  EXPECT_TRUE(Fails(s().link(f.ino, f.ino, "x"), ENOTDIR));
  ASSERT_TRUE(Ok(s().unlink(kRootIno, "f")));
  EXPECT_EQ(attr(f.ino).nlink, 1u);
  EXPECT_EQ(s().statfs().files_free, ffree);
  EXPECT_EQ(read(f.ino, 0, 100), "shared");
  ASSERT_TRUE(Ok(s().unlink(d.ino, "l")));
  EXPECT_FALSE(s().getattr(f.ino));
  EXPECT_EQ(s().pages_used(), 0u);
}

TEST_F(NamesTest, AnUnlinkedFileCannotBeLinkedAgain) {
  Attr f = must(s().mknod(kRootIno, "f", S_IFREG | 0644, 0, root_caller()));
  ASSERT_TRUE(Ok(s().unlink(kRootIno, "f")));
  EXPECT_TRUE(Fails(s().link(f.ino, kRootIno, "again"), ENOENT));
  s().forget(f.ino, 1);
  EXPECT_EQ(s().inodes_used(), 1u);
}

// O_TMPFILE: no entry, nlink 0, one inode charged; its first link costs no second inode
// and clears the right to link it from nothing again; unlinked, it goes at its release.
TEST_F(NamesTest, UnnamedFilesAreLinkableOnceAndFreedAtRelease) {
  Attr d = make_dir(kRootIno, "d");
  const Attr dir_before = attr(d.ino);
  const std::uint64_t inodes = s().inodes_used();
  Attr t = must(s().create_unnamed(d.ino, 0640, Caller{7, 8, false}));
  EXPECT_EQ(t.mode, S_IFREG | 0640u);
  EXPECT_EQ(t.nlink, 0u);
  EXPECT_EQ(t.uid, 7u);
  EXPECT_EQ(s().inodes_used(), inodes + 1);
  EXPECT_EQ(must(s().open_handles(t.ino)), 1u);
  EXPECT_EQ(attr(d.ino).size, dir_before.size);
  EXPECT_EQ(attr(d.ino).mtime, dir_before.mtime);
  ASSERT_EQ(must(write(t.ino, 0, "data")), 4u);
  Attr named = must(s().link(t.ino, kRootIno, "named"));
  EXPECT_EQ(named.nlink, 1u);
  EXPECT_EQ(s().inodes_used(), inodes + 1) << "the first name has the file's own charge";
  ASSERT_TRUE(Ok(s().unlink(kRootIno, "named")));
  EXPECT_TRUE(Fails(s().link(t.ino, kRootIno, "again"), ENOENT)) << "linkable only until first linked";
  EXPECT_EQ(s().pages_used(), 1u);
  s().release(t.ino);
  EXPECT_EQ(s().pages_used(), 0u);
  EXPECT_EQ(s().inodes_used(), inodes);
  s().forget(t.ino, 2);

  Attr gone = must(s().create_unnamed(d.ino, 0600, root_caller()));
  s().release(gone.ino);
  s().forget(gone.ino, 1);
  EXPECT_EQ(s().inodes_used(), inodes);
  EXPECT_TRUE(Fails(s().create_unnamed(gone.ino, 0600, root_caller()), ESTALE));
  Attr file = create(kRootIno, "file");
  EXPECT_TRUE(Fails(s().create_unnamed(file.ino, 0600, root_caller()), ENOTDIR));
  EXPECT_FALSE(s().verify());
}

// --- rename -------------------------------------------------------------------------------

class RenameTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    a = make_dir(kRootIno, "a");
    b = make_dir(kRootIno, "b");
  }
  Attr a, b;
};

TEST_F(RenameTest, MovesWithinAndAcrossDirectories) {
  Attr f = create(a.ino, "f");
  ASSERT_TRUE(Ok(s().rename(a.ino, "f", a.ino, "g", 0)));
  EXPECT_TRUE(Fails(s().lookup(a.ino, "f"), ENOENT));
  EXPECT_EQ(must(peek(a.ino, "g")).ino, f.ino);
  ASSERT_TRUE(Ok(s().rename(a.ino, "g", b.ino, "h", 0)));
  EXPECT_EQ(must(peek(b.ino, "h")).ino, f.ino);
  EXPECT_TRUE(names(a.ino).empty());
  EXPECT_TRUE(Fails(s().rename(a.ino, "missing", b.ino, "x", 0), ENOENT));
  // Renaming a name onto itself changes nothing.
  ASSERT_TRUE(Ok(s().rename(b.ino, "h", b.ino, "h", 0)));
  EXPECT_EQ(must(peek(b.ino, "h")).ino, f.ino);
}

TEST_F(RenameTest, MovingADirectoryFixesDotDotAndLinkCounts) {
  Attr d = make_dir(a.ino, "d");
  EXPECT_EQ(attr(a.ino).nlink, 3u);
  ASSERT_TRUE(Ok(s().rename(a.ino, "d", b.ino, "d", 0)));
  EXPECT_EQ(attr(a.ino).nlink, 2u);
  EXPECT_EQ(attr(b.ino).nlink, 3u);
  EXPECT_EQ(must(peek(d.ino, "..")).ino, b.ino);
  auto l = list(d.ino);
  ASSERT_GE(l.size(), 2u);
  EXPECT_EQ(l[1].name, "..");
  EXPECT_EQ(l[1].ino, b.ino);
}

TEST_F(RenameTest, ReplacingAFileFreesIt) {
  Attr f = create(a.ino, "f");
  Attr g = create(a.ino, "g");
  ASSERT_TRUE(Ok(write(g.ino, 0, "gone")));
  std::uint64_t inodes = s().inodes_used();
  ASSERT_TRUE(Ok(s().rename(a.ino, "f", a.ino, "g", 0)));
  EXPECT_EQ(must(peek(a.ino, "g")).ino, f.ino);
  EXPECT_FALSE(s().getattr(g.ino));
  EXPECT_EQ(s().inodes_used(), inodes - 1);
  EXPECT_EQ(s().pages_used(), 0u);
  EXPECT_EQ(names(a.ino), std::vector<std::string>{"g"});
}

TEST_F(RenameTest, NoReplace) {
  Attr f = create(a.ino, "f");
  Attr g = create(a.ino, "g");
  EXPECT_TRUE(Fails(s().rename(a.ino, "f", a.ino, "g", RENAME_NOREPLACE), EEXIST));
  EXPECT_EQ(must(peek(a.ino, "f")).ino, f.ino);
  EXPECT_EQ(must(peek(a.ino, "g")).ino, g.ino);
  ASSERT_TRUE(Ok(s().rename(a.ino, "f", b.ino, "f", RENAME_NOREPLACE)));
  EXPECT_EQ(must(peek(b.ino, "f")).ino, f.ino);
  EXPECT_TRUE(
      Fails(s().rename(b.ino, "f", a.ino, "x", RENAME_NOREPLACE | RENAME_EXCHANGE), EINVAL));
}

TEST_F(RenameTest, ExchangeSwapsAFileAndADirectory) {
  Attr f = create(a.ino, "f");
  Attr d = make_dir(b.ino, "d");
  ASSERT_TRUE(Ok(s().rename(a.ino, "f", b.ino, "d", RENAME_EXCHANGE)));
  EXPECT_EQ(must(peek(a.ino, "f")).ino, d.ino);
  EXPECT_EQ(must(peek(b.ino, "d")).ino, f.ino);
  EXPECT_EQ(must(peek(d.ino, "..")).ino, a.ino);
  EXPECT_EQ(attr(a.ino).nlink, 3u);
  EXPECT_EQ(attr(b.ino).nlink, 2u);
  std::map<std::string, mode_t> types;
  for (auto& e : list(a.ino)) types[e.name] = e.mode & S_IFMT;
  EXPECT_EQ(types["f"], S_IFDIR);
  EXPECT_TRUE(Fails(s().rename(a.ino, "f", b.ino, "missing", RENAME_EXCHANGE), ENOENT));
  EXPECT_EQ(s().inodes_used(), 5u);
}

TEST_F(RenameTest, DirectoryOverDirectory) {
  Attr d = make_dir(a.ino, "d");
  create(d.ino, "inside");
  Attr empty = make_dir(b.ino, "empty");
  Attr full = make_dir(b.ino, "full");
  create(full.ino, "x");
  EXPECT_TRUE(Fails(s().rename(a.ino, "d", b.ino, "full", 0), ENOTEMPTY));
  std::uint64_t inodes = s().inodes_used();
  ASSERT_TRUE(Ok(s().rename(a.ino, "d", b.ino, "empty", 0)));
  EXPECT_EQ(must(peek(b.ino, "empty")).ino, d.ino);
  EXPECT_FALSE(s().getattr(empty.ino));
  EXPECT_EQ(s().inodes_used(), inodes - 1);
  EXPECT_EQ(attr(a.ino).nlink, 2u);
  EXPECT_EQ(attr(b.ino).nlink, 4u);  // ".", "..", empty (now d), full
  EXPECT_EQ(names(d.ino), std::vector<std::string>{"inside"});
}

TEST_F(RenameTest, DirectoryOverEmptySiblingInTheSameParent) {
  make_dir(a.ino, "x");
  make_dir(a.ino, "y");
  EXPECT_EQ(attr(a.ino).nlink, 4u);
  ASSERT_TRUE(Ok(s().rename(a.ino, "x", a.ino, "y", 0)));
  EXPECT_EQ(attr(a.ino).nlink, 3u);
  EXPECT_EQ(names(a.ino), std::vector<std::string>{"y"});
}

TEST_F(RenameTest, TypeMismatches) {
  create(a.ino, "f");
  Attr d = make_dir(a.ino, "d");
  EXPECT_TRUE(Fails(s().rename(a.ino, "f", a.ino, "d", 0), EISDIR));
  EXPECT_TRUE(Fails(s().rename(a.ino, "d", a.ino, "f", 0), ENOTDIR));
  EXPECT_EQ(must(peek(a.ino, "d")).ino, d.ino);
  // A non-empty target that is an ancestor of the source: ENOTEMPTY, as on tmpfs.
  Attr sub = make_dir(d.ino, "sub");
  (void)sub;
  EXPECT_TRUE(Fails(s().rename(d.ino, "sub", kRootIno, "a", 0), ENOTEMPTY));
}

TEST_F(RenameTest, NoDirectoryIntoItsOwnSubtree) {
  Attr d = make_dir(a.ino, "d");
  Attr e = make_dir(d.ino, "e");
  EXPECT_TRUE(Fails(s().rename(kRootIno, "a", e.ino, "x", 0), EINVAL));
  EXPECT_TRUE(Fails(s().rename(kRootIno, "a", a.ino, "x", 0), EINVAL));
  EXPECT_TRUE(Fails(s().rename(kRootIno, "a", e.ino, "x", RENAME_NOREPLACE), EINVAL));
  create(e.ino, "f");
  EXPECT_TRUE(Fails(s().rename(kRootIno, "a", e.ino, "f", RENAME_EXCHANGE), EINVAL));
  EXPECT_TRUE(Fails(s().rename(e.ino, "f", kRootIno, "a", RENAME_EXCHANGE), EINVAL));
  EXPECT_EQ(must(peek(kRootIno, "a")).ino, a.ino);
  EXPECT_EQ(must(peek(d.ino, "e")).ino, e.ino);
  EXPECT_EQ(must(peek(a.ino, "..")).ino, kRootIno);
  // A sibling subtree is fine.
  ASSERT_TRUE(Ok(s().rename(a.ino, "d", b.ino, "d", 0)));
  EXPECT_EQ(must(peek(d.ino, "..")).ino, b.ino);
}

TEST_F(RenameTest, TwoLinksToOneInodeIsANoOp) {
  Attr f = create(a.ino, "f");
  hard_link(f.ino, a.ino, "g");
  ASSERT_TRUE(Ok(s().rename(a.ino, "f", a.ino, "g", 0)));
  EXPECT_EQ(must(peek(a.ino, "f")).ino, f.ino);
  EXPECT_EQ(must(peek(a.ino, "g")).ino, f.ino);
  EXPECT_EQ(attr(f.ino).nlink, 2u);
}

TEST_F(RenameTest, ReplacingAHardLinkReturnsItsInodeCharge) {
  Attr f = create(a.ino, "f");
  hard_link(f.ino, a.ino, "link");
  create(a.ino, "other");
  std::uint64_t inodes = s().inodes_used();
  ASSERT_TRUE(Ok(s().rename(a.ino, "other", a.ino, "link", 0)));
  EXPECT_EQ(attr(f.ino).nlink, 1u);
  EXPECT_EQ(s().inodes_used(), inodes - 1);
}

// RENAME_WHITEOUT: the old name becomes a 0:0 character device without permission bits,
// owned by the caller, charged an inode; with no inode left nothing moves.
TEST_F(RenameTest, WhiteoutLeavesACharacterDeviceUnderTheOldName) {
  Attr f = create(a.ino, "f");
  const std::uint64_t inodes = s().inodes_used();
  const std::uint64_t a_size = attr(a.ino).size;
  ASSERT_TRUE(Ok(s().rename(a.ino, "f", b.ino, "g", RENAME_WHITEOUT, {}, Caller{5, 6, false})));
  Attr w = must(s().lookup(a.ino, "f"));  // the lookup is kept: the test forgets it below
  EXPECT_NE(w.ino, f.ino);
  EXPECT_EQ(w.mode, static_cast<mode_t>(S_IFCHR));
  EXPECT_EQ(w.rdev, 0u);
  EXPECT_EQ(w.nlink, 1u);
  EXPECT_EQ(w.uid, 5u);
  EXPECT_EQ(w.gid, 6u);
  EXPECT_EQ(must(peek(b.ino, "g")).ino, f.ino);
  EXPECT_EQ(s().inodes_used(), inodes + 1);
  EXPECT_EQ(attr(a.ino).size, a_size);
  EXPECT_TRUE(Fails(s().rename(b.ino, "g", a.ino, "f", RENAME_WHITEOUT | RENAME_NOREPLACE), EEXIST));
  EXPECT_TRUE(Fails(s().rename(b.ino, "g", a.ino, "f", RENAME_WHITEOUT | RENAME_EXCHANGE), EINVAL));
  // Over the whiteout: it is replaced (and freed once forgotten), a new one is left.
  ASSERT_TRUE(Ok(s().rename(b.ino, "g", a.ino, "f", RENAME_WHITEOUT)));
  s().forget(w.ino, 1);
  EXPECT_EQ(s().inodes_used(), inodes + 1);
  EXPECT_EQ(must(peek(b.ino, "g")).mode, static_cast<mode_t>(S_IFCHR));
  EXPECT_FALSE(s().verify());
}

TEST_F(RenameTest, WhiteoutNeedsAnInode) {
  Attr f = create(a.ino, "f");
  while (s().mknod(kRootIno, "fill" + std::to_string(s().inodes_used()), S_IFREG | 0600, 0, root_caller())) {
  }
  EXPECT_TRUE(Fails(s().rename(a.ino, "f", b.ino, "g", RENAME_WHITEOUT), ENOSPC));
  EXPECT_EQ(must(peek(a.ino, "f")).ino, f.ino);
  EXPECT_TRUE(Fails(peek(b.ino, "g"), ENOENT));
  EXPECT_TRUE(Ok(s().rename(a.ino, "f", b.ino, "g", 0)));
}

// --- readdir ------------------------------------------------------------------------------

TEST_F(NamesTest, ReaddirListsDotsAndEntries) {
  Attr d = make_dir(kRootIno, "d");
  Attr f = create(d.ino, "f");
  Attr sub = make_dir(d.ino, "sub");
  auto l = list(d.ino);
  ASSERT_EQ(l.size(), 4u);
  EXPECT_EQ(l[0].name, ".");
  EXPECT_EQ(l[0].ino, d.ino);
  EXPECT_EQ(l[1].name, "..");
  EXPECT_EQ(l[1].ino, kRootIno);
  std::map<std::string, Ino> got;
  for (auto& e : l) got[e.name] = e.ino;
  EXPECT_EQ(got["f"], f.ino);
  EXPECT_EQ(got["sub"], sub.ino);
  EXPECT_TRUE(list(d.ino, l.back().next).empty());
  EXPECT_TRUE(Fails(s().readdir(f.ino, 0, false, [](const DirEntry&, const Attr*) { return true; }),
                    ENOTDIR));
}

TEST_F(NamesTest, ReaddirRefusedEntryIsNotConsumed) {
  for (int i = 0; i < 5; ++i) create(kRootIno, "f" + std::to_string(i));
  std::vector<std::string> seen;
  std::uint64_t off = 0;
  for (;;) {
    auto page = list(kRootIno, off, 2);
    if (page.empty()) break;
    for (auto& e : page) seen.push_back(e.name);
    off = page.back().next;
  }
  std::vector<std::string> all;
  for (auto& e : list(kRootIno)) all.push_back(e.name);
  EXPECT_EQ(seen, all);
  EXPECT_EQ(seen.size(), 7u);
}

// A directory listed in pieces while entries come and go: resuming from a saved offset
// skips and repeats nothing among the entries that existed throughout.
TEST_F(NamesTest, ReaddirOffsetsStayValidWhileEntriesChange) {
  Attr d = make_dir(kRootIno, "d");
  auto name = [](char p, int i) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%c%03d", p, i);
    return std::string(buf);
  };
  for (int i = 0; i < 200; ++i) create(d.ino, name('f', i));
  std::set<std::string> removed;
  std::multiset<std::string> seen;
  std::uint64_t off = 0;
  int round = 0;
  for (;;) {
    auto page = list(d.ino, off, 17);
    if (page.empty()) break;
    for (auto& e : page) seen.insert(e.name);
    off = page.back().next;
    // Between pieces: remove some names already listed and some not yet listed, add new
    // ones (for a while only: a listing that chases its own additions never ends).
    if (round >= 10) continue;
    ++round;
    for (int k = 0; k < 3; ++k) {
      int victim = (round * 37 + k * 71) % 200;
      if (removed.insert(name('f', victim)).second) {
        ASSERT_TRUE(Ok(s().unlink(d.ino, name('f', victim))));
      }
    }
    for (int k = 0; k < 4; ++k) create(d.ino, name('g', round * 4 + k));
    if (round % 3 == 0) {  // and rename one never-removed name to a fresh one
      std::string from = name('f', (round * 13 + 5) % 200), to = name('r', round);
      if (removed.insert(from).second) {
        ASSERT_TRUE(Ok(s().rename(d.ino, from, d.ino, to, 0)));
      }
    }
  }
  for (int i = 0; i < 200; ++i) {
    std::string n = name('f', i);
    if (removed.count(n)) {
      EXPECT_LE(seen.count(n), 1u) << n;
    } else {
      EXPECT_EQ(seen.count(n), 1u) << n;
    }
  }
  for (auto& n : {std::string("."), std::string("..")}) EXPECT_EQ(seen.count(n), 1u);
  for (auto& n : seen) EXPECT_EQ(seen.count(n), 1u) << n << " listed twice";
}

TEST_F(NamesTest, ReaddirOffsetOfARemovedEntryResumesAfterIt) {
  for (int i = 0; i < 4; ++i) create(kRootIno, "f" + std::to_string(i));
  auto all = list(kRootIno);
  ASSERT_EQ(all.size(), 6u);
  // Resume after entry 3 while entry 3 and 4 are gone.
  ASSERT_TRUE(Ok(s().unlink(kRootIno, all[3].name)));
  ASSERT_TRUE(Ok(s().unlink(kRootIno, all[4].name)));
  auto rest = list(kRootIno, all[3].next);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].name, all[5].name);
}

// --- statfs and limits --------------------------------------------------------------------

TEST_F(NamesTest, StatfsCountsPagesAndInodesAsTmpfs) {
  reset_store(StoreOptions{.size_bytes = kMiB, .max_inodes = 100});
  StatFs f = s().statfs();
  EXPECT_EQ(f.block_size, 4096u);
  EXPECT_EQ(f.blocks, 256u);
  EXPECT_EQ(f.blocks_free, 256u);
  EXPECT_EQ(f.files, 100u);
  EXPECT_EQ(f.files_free, 99u);  // tmpfs counts its root
  EXPECT_EQ(f.name_max, 255u);
  Attr file = create(kRootIno, "f");
  EXPECT_EQ(s().statfs().files_free, 98u);
  hard_link(file.ino, kRootIno, "g");
  EXPECT_EQ(s().statfs().files_free, 97u);
  make_dir(kRootIno, "d");
  EXPECT_EQ(s().statfs().files_free, 96u);
  make_symlink(kRootIno, "s", "f");
  EXPECT_EQ(s().statfs().files_free, 95u);
  create(kRootIno, "p", S_IFIFO | 0644);
  EXPECT_EQ(s().statfs().files_free, 94u);
  ASSERT_TRUE(Ok(write(file.ino, 0, "x")));
  EXPECT_EQ(s().statfs().blocks_free, 255u);
  EXPECT_EQ(attr(file.ino).blocks, 8u);
  EXPECT_EQ(s().inodes_used(), 6u);
  EXPECT_EQ(s().pages_used(), 1u);
  EXPECT_EQ(s().quota_pages(), 256u);
  EXPECT_EQ(s().max_inodes(), 100u);
}

TEST_F(NamesTest, QuotaRoundsUpToWholePagesAndDefaultInodeLimit) {
  reset_store(StoreOptions{.size_bytes = kMiB + 1});
  EXPECT_EQ(s().statfs().blocks, 257u);
  EXPECT_EQ(s().max_inodes(), 1024u);
  EXPECT_EQ(Store::default_max_inodes(kMiB), 1024u);
  EXPECT_EQ(Store::default_max_inodes(64 * kMiB), 16384u);
  EXPECT_TRUE(Fails(Store::create(StoreOptions{.size_bytes = 0}), EINVAL));
}

TEST_F(NamesTest, InodeLimitGivesEnospc) {
  reset_store(StoreOptions{.size_bytes = kMiB, .max_inodes = 6});
  Attr f = create(kRootIno, "f");
  make_dir(kRootIno, "d");
  make_symlink(kRootIno, "s", "t");
  hard_link(f.ino, kRootIno, "h");
  create(kRootIno, "g");
  EXPECT_EQ(s().statfs().files_free, 0u);
  EXPECT_TRUE(Fails(s().mknod(kRootIno, "x", S_IFREG | 0644, 0, root_caller()), ENOSPC));
  EXPECT_TRUE(Fails(s().mkdir(kRootIno, "x", 0755, root_caller()), ENOSPC));
  EXPECT_TRUE(Fails(s().symlink(kRootIno, "x", "t", root_caller()), ENOSPC));
  EXPECT_TRUE(Fails(s().link(f.ino, kRootIno, "x"), ENOSPC));
  EXPECT_TRUE(Fails(s().lookup(kRootIno, "x"), ENOENT));
  EXPECT_EQ(attr(f.ino).nlink, 2u);
  // Renames need no new inode.
  ASSERT_TRUE(Ok(s().rename(kRootIno, "g", kRootIno, "x", 0)));
  ASSERT_TRUE(Ok(s().unlink(kRootIno, "h")));
  create(kRootIno, "y");
  EXPECT_TRUE(Fails(s().mknod(kRootIno, "z", S_IFREG | 0644, 0, root_caller()), ENOSPC));
}

TEST_F(NamesTest, GenerationChangesWhenASlotIsReused) {
  reset_store(StoreOptions{.size_bytes = kMiB, .max_inodes = 3});
  std::map<Ino, std::set<std::uint64_t>> generations;
  for (int i = 0; i < 10; ++i) {
    Attr f = create(kRootIno, "f");
    Attr g = create(kRootIno, "g");
    EXPECT_TRUE(generations[f.ino].insert(f.generation).second) << "ino " << f.ino << " reused";
    EXPECT_TRUE(generations[g.ino].insert(g.generation).second) << "ino " << g.ino << " reused";
    ASSERT_TRUE(Ok(s().unlink(kRootIno, "f")));
    ASSERT_TRUE(Ok(s().unlink(kRootIno, "g")));
  }
  EXPECT_EQ(generations.size(), 2u);  // only two slots exist: both were reused
  EXPECT_FALSE(generations.count(kRootIno));
}

TEST_F(NamesTest, StaleInodeNumbersAreRefused) {
  Attr f = create(kRootIno, "f");
  ASSERT_TRUE(Ok(s().unlink(kRootIno, "f")));
  EXPECT_FALSE(s().getattr(f.ino));
  EXPECT_FALSE(s().open(f.ino));
  EXPECT_FALSE(read_result(f.ino, 0, 1));
  EXPECT_FALSE(write(f.ino, 0, "x"));
  EXPECT_FALSE(s().getattr(0));
  EXPECT_FALSE(s().getattr(1u << 30));
  EXPECT_FALSE(s().lookup(1u << 30, "x"));
}

// --- ownership rules the store applies ----------------------------------------------------

TEST_F(NamesTest, SetgidDirectoryGivesItsGroupAndDirsInheritTheBit) {
  Attr g = make_dir(kRootIno, "g", 0777);
  AttrChange c;
  c.gid = 1234;
  c.mode = 02777;
  ASSERT_TRUE(Ok(set(g.ino, c)));
  Caller u = user_caller(1000, 2000);
  Attr f = create(g.ino, "f", S_IFREG | 0644, u);
  Attr d = make_dir(g.ino, "d", 0755, u);
  Attr sl = must(s().symlink(g.ino, "s", "f", u));
  s().forget(sl.ino, 1);
  Attr outside = create(kRootIno, "nf", S_IFREG | 0644, u);
  EXPECT_EQ(f.uid, 1000u);
  EXPECT_EQ(f.gid, 1234u);
  EXPECT_EQ(f.mode, S_IFREG | 0644u);
  EXPECT_EQ(d.gid, 1234u);
  EXPECT_EQ(d.mode, S_IFDIR | 02755u);
  EXPECT_EQ(sl.gid, 1234u);
  EXPECT_EQ(outside.gid, 2000u);
  // The inherited bit passes on further down.
  Attr dd = make_dir(d.ino, "dd", 0700, u);
  EXPECT_EQ(dd.gid, 1234u);
  EXPECT_EQ(dd.mode, S_IFDIR | 02700u);
}

// Observed on tmpfs: an unprivileged write or truncate drops setuid, and setgid only when
// the file is group-executable; a privileged one, or a time change, keeps both.
struct KillCase {
  mode_t before, after;
};
constexpr KillCase kKillCases[] = {
    {06755, 0755}, {06745, 02745}, {02755, 0755}, {04700, 0700}, {0644, 0644}};

TEST_F(NamesTest, UnprivilegedWriteDropsSetuidAndGroupExecSetgid) {
  Caller u = user_caller(1000, 2000);
  for (const KillCase& k : kKillCases) {
    SCOPED_TRACE(::testing::Message() << std::oct << k.before);
    std::string n = "w" + std::to_string(k.before);
    Attr f = create(kRootIno, n, S_IFREG | k.before);
    ASSERT_TRUE(Ok(write(f.ino, 0, "x", u)));
    EXPECT_EQ(attr(f.ino).mode, S_IFREG | k.after);
    // A privileged writer keeps the bits.
    AttrChange c;
    c.mode = k.before;
    ASSERT_TRUE(Ok(set(f.ino, c)));
    ASSERT_TRUE(Ok(write(f.ino, 1, "x", root_caller())));
    EXPECT_EQ(attr(f.ino).mode, S_IFREG | k.before);
    // The kernel's killpriv request (unprivileged truncate) drops them the same way.
    AttrChange t;
    t.size = 0;
    t.kill_suid_sgid = true;
    ASSERT_TRUE(Ok(set(f.ino, t, u)));
    EXPECT_EQ(attr(f.ino).mode, S_IFREG | k.after);
    // Changing times alone keeps them.
    ASSERT_TRUE(Ok(set(f.ino, c)));
    AttrChange times;
    times.atime = {TimeChange::Kind::kSet, ts(1, 1)};
    times.mtime = {TimeChange::Kind::kSet, ts(1, 1)};
    ASSERT_TRUE(Ok(set(f.ino, times, u)));
    EXPECT_EQ(attr(f.ino).mode, S_IFREG | k.before);
  }
}

TEST_F(NamesTest, ChownOfAFileDropsSetuidAndGroupExecSetgid) {
  struct ChownCase {
    mode_t type, before, after;
  };
  int i = 0;
  for (const ChownCase& k : {ChownCase{S_IFREG, 06755, 0755}, ChownCase{S_IFREG, 06644, 02644},
                             ChownCase{S_IFDIR, 06755, 06755}}) {
    SCOPED_TRACE(::testing::Message() << std::oct << k.type << " " << k.before);
    std::string n = "c" + std::to_string(i++);
    Attr f = k.type == S_IFDIR ? make_dir(kRootIno, n, k.before)
                               : create(kRootIno, n, k.type | k.before);
    ASSERT_EQ(f.mode, k.type | k.before);
    for (bool same_owner : {true, false}) {
      AttrChange own;
      own.uid = same_owner ? f.uid : 1;  // tmpfs drops the bits even for chown to self
      own.gid = same_owner ? f.gid : 1;
      Attr a = must(set(f.ino, own));
      EXPECT_EQ(a.mode, k.type | k.after);
      AttrChange back;
      back.mode = k.before;
      ASSERT_TRUE(Ok(set(f.ino, back)));
    }
  }
}

}  // namespace
}  // namespace hostchanfs::shm::testing
