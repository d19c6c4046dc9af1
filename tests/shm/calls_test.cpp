// The store calls that hold what FUSE handlers used to do themselves: create-and-open as
// one call, copy_file_range's chunked copy, opendir's type check, the argument checks.
#include <fcntl.h>
#include <linux/falloc.h>

#include "tests/shm/store_fixture.hpp"

namespace hostchanfs::shm::testing {
namespace {

using CallsTest = StoreTest;

TEST_F(CallsTest, CreateAndOpenCountsALookupAndAHandle) {
  Attr a = must(s().create_and_open(kRootIno, "f", 0640, root_caller()));
  EXPECT_EQ(a.mode, S_IFREG | 0640u);
  EXPECT_EQ(a.nlink, 1u);
  ASSERT_TRUE(Ok(write(a.ino, 0, "data")));
  ASSERT_TRUE(Ok(s().unlink(kRootIno, "f")));
  s().forget(a.ino, 1);              // the lookup goes: the handle keeps the inode
  EXPECT_EQ(read(a.ino, 0, 10), "data");
  EXPECT_EQ(s().pages_used(), 1u);
  s().release(a.ino);                // the handle goes: so does the inode
  EXPECT_TRUE(Fails(s().getattr(a.ino), ESTALE));
  EXPECT_EQ(s().pages_used(), 0u);
  EXPECT_EQ(s().inodes_used(), 1u);
}

TEST_F(CallsTest, CreateAndOpenMakesARegularFileWhateverTheTypeBits) {
  Attr a = must(s().create_and_open(kRootIno, "f", S_IFDIR | 0755, user_caller(1000, 1000)));
  EXPECT_EQ(a.mode, S_IFREG | 0755u);
  EXPECT_EQ(a.uid, 1000u);
}

TEST_F(CallsTest, ACreateAndOpenThatFailsLeavesNothing) {
  create(kRootIno, "f");
  EXPECT_TRUE(Fails(s().create_and_open(kRootIno, "f", 0644, root_caller()), EEXIST));
  Attr d = must(s().mkdir(kRootIno, "d", 0755, root_caller()));  // the kernel holds it
  ASSERT_TRUE(Ok(s().rmdir(kRootIno, "d")));
  EXPECT_TRUE(Fails(s().create_and_open(d.ino, "g", 0644, root_caller()), ENOENT));
  s().forget(d.ino, 1);
  reset_store(StoreOptions{.size_bytes = kMiB, .max_inodes = 2});
  create(kRootIno, "one");
  EXPECT_TRUE(Fails(s().create_and_open(kRootIno, "two", 0644, root_caller()), ENOSPC));
  EXPECT_EQ(s().inodes_used(), 2u);
  EXPECT_EQ(names(kRootIno), std::vector<std::string>{"one"});
}

TEST_F(CallsTest, OpendirTakesDirectoriesOnly) {
  Attr d = make_dir(kRootIno, "d");
  Attr f = create(kRootIno, "f");
  EXPECT_TRUE(Ok(s().opendir(kRootIno)));
  EXPECT_TRUE(Ok(s().opendir(d.ino)));
  EXPECT_TRUE(Fails(s().opendir(f.ino), ENOTDIR));
  EXPECT_TRUE(Fails(s().opendir(999), ESTALE));
}

TEST_F(CallsTest, CopyFileRangeCopiesInPiecesUpToTheEndOfTheSource) {
  reset_store(StoreOptions{.size_bytes = 8 * kMiB});
  Attr in = create(kRootIno, "in"), out = create(kRootIno, "out");
  std::string text;
  for (int i = 0; text.size() < 3 * kMiB + 10; ++i) text += std::to_string(i) + ",";
  ASSERT_EQ(must(write(in.ino, 0, text)), text.size());
  // More than one 1 MiB piece, from an offset, to an offset.
  EXPECT_EQ(must(s().copy_file_range(in.ino, 5, out.ino, 100, 4 * kMiB, 0, root_caller())),
            text.size() - 5);
  EXPECT_EQ(read(out.ino, 100, SIZE_MAX), text.substr(5));
  EXPECT_EQ(attr(out.ino).size, 100 + text.size() - 5);
  EXPECT_EQ(must(s().copy_file_range(in.ino, text.size(), out.ino, 0, 10, 0, root_caller())), 0u);
}

TEST_F(CallsTest, CopyFileRangeStopsWhereTheQuotaEndsAndFailsOnlyWhenNothingWent) {
  Attr in = create(kRootIno, "in"), out = create(kRootIno, "out");
  ASSERT_TRUE(Ok(write(in.ino, 0, std::string(kMiB / 2, 'i'))));  // half of the 1 MiB quota
  EXPECT_EQ(must(s().copy_file_range(in.ino, 0, out.ino, 0, kMiB, 0, root_caller())), kMiB / 2);
  EXPECT_TRUE(Fails(s().copy_file_range(in.ino, 0, out.ino, kMiB / 2, 10, 0, root_caller()), ENOSPC));
  EXPECT_TRUE(Fails(s().copy_file_range(999, 0, out.ino, 0, 10, 0, root_caller()), ESTALE));
  EXPECT_TRUE(Fails(s().copy_file_range(in.ino, 0, kRootIno, 0, 10, 0, root_caller()), EISDIR));
  EXPECT_TRUE(Fails(s().copy_file_range(in.ino, 0, out.ino, 0, 10, 1, root_caller()), EINVAL));
}

TEST_F(CallsTest, ACopyByAnUnprivilegedCallerDropsSetuid) {
  Attr in = create(kRootIno, "in"), out = create(kRootIno, "out", S_IFREG | 04755);
  ASSERT_TRUE(Ok(write(in.ino, 0, "x")));
  EXPECT_EQ(must(s().copy_file_range(in.ino, 0, out.ino, 0, 1, 0, user_caller(1, 1))), 1u);
  EXPECT_EQ(attr(out.ino).mode, S_IFREG | 0755u);
}

// Checked once, in the store: a handler passes them through.
TEST_F(CallsTest, SeekTakesDataAndHoleOnlyAndFallocateALength) {
  Attr f = create(kRootIno, "f");
  ASSERT_TRUE(Ok(write(f.ino, 0, "abc")));
  EXPECT_TRUE(Fails(s().seek(f.ino, 0, SEEK_SET), EINVAL));
  EXPECT_TRUE(Fails(s().seek(f.ino, 0, SEEK_END), EINVAL));
  EXPECT_EQ(must(s().seek(f.ino, 0, SEEK_HOLE)), 3u);
  EXPECT_TRUE(Fails(s().fallocate(f.ino, 0, 0, 0), EINVAL));
  EXPECT_TRUE(Fails(s().fallocate(f.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 0), EINVAL));
}

}  // namespace
}  // namespace hostchanfs::shm::testing
