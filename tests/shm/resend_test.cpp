// Exactly once: a mutating call with a request identity records its outcome in the tx that
// applies it; the same request resent (bit 63 of its unique, as the kernel marks requests
// it queues again after FUSE_NOTIFY_RESEND) is answered from the record and applies
// nothing. The record survives a re-attach; the ring forgets the oldest of 4096.
#include <linux/fs.h>
#include <sys/xattr.h>

#include "tests/shm/crash_fixture.hpp"

namespace hostchanfs::shm::testing {
namespace {

class ResendTest : public StoreTest {
 protected:
  static Request sent(std::uint64_t unique) { return Request{unique}; }
  static Request resent(std::uint64_t unique) { return Request{unique | Request::kResend}; }
};

TEST_F(ResendTest, AResentCreateGetsItsOwnFileAndCountsNoSecondLookup) {
  Attr a = must(s().mknod(kRootIno, "f", S_IFREG | 0644, 0, root_caller(), sent(10)));
  Attr again = must(s().mknod(kRootIno, "f", S_IFREG | 0644, 0, root_caller(), resent(10)));  // not EEXIST
  EXPECT_EQ(again.ino, a.ino);
  EXPECT_EQ(again.generation, a.generation);
  // The kernel holds one lookup (the reply it got); giving it back frees the unlinked file.
  ASSERT_TRUE(Ok(s().unlink(kRootIno, "f")));
  s().forget(a.ino, 1);
  EXPECT_TRUE(Fails(s().getattr(a.ino), ESTALE));
}

TEST_F(ResendTest, AResentExclusiveCreateAndOpenIsOneFileAndOneHandle) {
  Attr a = must(s().create_and_open(kRootIno, "f", 0600, root_caller(), sent(12)));
  Attr again = must(s().create_and_open(kRootIno, "f", 0600, root_caller(), resent(12)));
  EXPECT_EQ(again.ino, a.ino);
  EXPECT_EQ(must(s().open_handles(a.ino)), 1u);
  EXPECT_EQ(s().inodes_used(), 2u);
}

TEST_F(ResendTest, AResentReleaseClosesOnce) {
  Attr f = create(kRootIno, "f");
  // open returns the attributes with the handle counted (the count --charge writer
  // closes a backing id by); a resend counts nothing and says so.
  EXPECT_EQ(must(s().open(f.ino, sent(20))).opens, 1u);
  Attr resent_open = must(s().open(f.ino, resent(20)));  // the open the dead daemon made
  EXPECT_EQ(resent_open.opens, 1u);
  EXPECT_EQ(resent_open.generation, f.generation);
  EXPECT_EQ(must(s().open_handles(f.ino)), 1u);
  EXPECT_EQ(must(s().open(f.ino, sent(22))).opens, 2u);
  s().release(f.ino, sent(24));
  s().release(f.ino, resent(24));
  EXPECT_EQ(must(s().open_handles(f.ino)), 1u);
}

TEST_F(ResendTest, ResentUnlinkRmdirAndRenameSucceedAndChangeNothingMore) {
  Attr f = create(kRootIno, "f");
  create(kRootIno, "g");
  make_dir(kRootIno, "d");
  ASSERT_TRUE(Ok(s().rename(kRootIno, "f", kRootIno, "d", RENAME_EXCHANGE, sent(30))));
  ASSERT_TRUE(Ok(s().rename(kRootIno, "f", kRootIno, "d", RENAME_EXCHANGE, resent(30))));  // not swapped back
  EXPECT_EQ(must(peek(kRootIno, "d")).ino, f.ino);
  ASSERT_TRUE(Ok(s().unlink(kRootIno, "g", sent(32))));
  EXPECT_TRUE(Ok(s().unlink(kRootIno, "g", resent(32))));  // not ENOENT
  ASSERT_TRUE(Ok(s().rmdir(kRootIno, "f", sent(34))));
  EXPECT_TRUE(Ok(s().rmdir(kRootIno, "f", resent(34))));
  EXPECT_EQ(names(kRootIno), std::vector<std::string>{"d"});
  EXPECT_EQ(s().inodes_used(), 2u);
}

TEST_F(ResendTest, AResentWriteGetsItsCountAndAppendsNothing) {
  Attr f = create(kRootIno, "f");
  EXPECT_EQ(must(s().write(f.ino, 0, bytes("hello"), root_caller(), sent(40))), 5u);
  EXPECT_EQ(must(s().write(f.ino, 5, bytes("world"), root_caller(), sent(42))), 5u);
  EXPECT_EQ(must(s().write(f.ino, 5, bytes("other"), root_caller(), resent(42))), 5u);
  EXPECT_EQ(read(f.ino, 0, 100), "helloworld");
}

TEST_F(ResendTest, ResentXattrCallsAreAnsweredFromTheRecord) {
  Attr f = create(kRootIno, "f");
  ASSERT_TRUE(Ok(s().setxattr(f.ino, "user.a", bytes("1"), XATTR_CREATE, sent(50))));
  EXPECT_TRUE(Ok(s().setxattr(f.ino, "user.a", bytes("1"), XATTR_CREATE, resent(50))));  // not EEXIST
  ASSERT_TRUE(Ok(s().removexattr(f.ino, "user.a", sent(52))));
  EXPECT_TRUE(Ok(s().removexattr(f.ino, "user.a", resent(52))));  // not ENODATA
  EXPECT_EQ(s().pages_used(), 0u);
}

TEST_F(ResendTest, ASetattrResentAfterAWriteDoesNotTruncateAgain) {
  Attr f = create(kRootIno, "f");
  AttrChange trunc;
  trunc.size = 0;
  ASSERT_TRUE(Ok(s().setattr(f.ino, trunc, root_caller(), sent(60))));
  ASSERT_TRUE(Ok(write(f.ino, 0, "kept")));
  EXPECT_EQ(must(s().setattr(f.ino, trunc, root_caller(), resent(60))).size, 4u);
  EXPECT_EQ(read(f.ino, 0, 10), "kept");
}

TEST_F(ResendTest, OnlyAResendIsLookedUpAndOnlyForItsOwnKindOfRequest) {
  ASSERT_TRUE(Ok(s().mknod(kRootIno, "f", S_IFREG | 0644, 0, root_caller(), sent(70))));
  // The same unique without the resend bit is a new request.
  EXPECT_TRUE(Fails(s().mknod(kRootIno, "f", S_IFREG | 0644, 0, root_caller(), sent(70)), EEXIST));
  // A resend of another kind of request with that unique is not answered by this record.
  EXPECT_TRUE(Fails(s().unlink(kRootIno, "nothing", resent(70)), ENOENT));
  // A resend that finds no record runs: the dead daemon never applied it.
  EXPECT_TRUE(Ok(s().mknod(kRootIno, "g", S_IFREG | 0644, 0, root_caller(), resent(72))));
  EXPECT_EQ(names(kRootIno), (std::vector<std::string>{"f", "g"}));
}

TEST_F(ResendTest, TheRingKeepsTheLast4096Outcomes) {
  reset_store(StoreOptions{.size_bytes = kMiB, .max_inodes = 8});
  Attr f = create(kRootIno, "f");
  ASSERT_TRUE(Ok(s().mknod(kRootIno, "old", S_IFREG | 0644, 0, root_caller(), sent(80))));
  for (std::uint64_t i = 0; i < 4095; ++i) ASSERT_TRUE(Ok(s().open(f.ino, sent(100 + 2 * i))));
  EXPECT_TRUE(Ok(s().mknod(kRootIno, "old", S_IFREG | 0644, 0, root_caller(), resent(80))));  // still there
  ASSERT_TRUE(Ok(s().open(f.ino, sent(99))));
  EXPECT_TRUE(Fails(s().mknod(kRootIno, "old", S_IFREG | 0644, 0, root_caller(), resent(80)), EEXIST));  // gone
}

TEST(ResendAcrossAttach, TheRecordSurvivesTheDaemon) {
  StoreFiles f = StoreFiles::make(StoreOptions{.size_bytes = 1 << 20}, [](Store& s) {
    Attr a = must(s.mknod(kRootIno, "f", S_IFREG | 0644, 0, Caller{}, Request{90}));
    EXPECT_EQ(must(s.write(a.ino, 0, bytes("abc"), Caller{}, Request{92})), 3u);
  });
  auto s = must(f.attach());
  Attr again = must(s->mknod(kRootIno, "f", S_IFREG | 0644, 0, Caller{}, Request{90 | Request::kResend}));
  EXPECT_EQ(must(s->write(again.ino, 3, bytes("xyz"), Caller{}, Request{92 | Request::kResend})), 3u);
  EXPECT_EQ(must(s->getattr(again.ino)).size, 3u);
}

}  // namespace
}  // namespace hostchanfs::shm::testing
