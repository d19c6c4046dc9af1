// The tmpfs rules the store copies, one by one: names, which bits a write or chown drops,
// who owns a new inode, what a symlink or a directory costs, and the times.
#include "shm/tmpfs_rules.hpp"
#include "tests/shm/parts_fixture.hpp"
#include "tests/shm/store_fixture.hpp"

namespace hostchanfs::shm::testing {
namespace {

TEST(TmpfsRules, NamesAreOneComponentOf1To255Bytes) {
  EXPECT_TRUE(Ok(check_name("a")));
  EXPECT_TRUE(Ok(check_name(std::string(255, 'n'))));
  EXPECT_TRUE(Ok(check_name("..x")));
  EXPECT_TRUE(Fails(check_name(""), ENOENT));
  EXPECT_TRUE(Fails(check_name(std::string(256, 'n')), ENAMETOOLONG));
  EXPECT_TRUE(Fails(check_name("a/b"), EINVAL));
}

TEST(TmpfsRules, SetuidAlwaysGoesSetgidOnlyWithGroupExec) {
  EXPECT_EQ(without_suid_sgid(S_IFREG | 04755), S_IFREG | 0755u);
  EXPECT_EQ(without_suid_sgid(S_IFREG | 02755), S_IFREG | 0755u);
  EXPECT_EQ(without_suid_sgid(S_IFREG | 02745), S_IFREG | 02745u);  // mandatory-locking bit
  EXPECT_EQ(without_suid_sgid(S_IFREG | 06711), S_IFREG | 0711u);
  EXPECT_EQ(without_suid_sgid(S_IFREG | 0644), S_IFREG | 0644u);
}

TEST(TmpfsRules, ANewInodeIsTheCallersUnlessItsDirectoryIsSetgid) {
  InodeRecord plain{}, setgid{};
  plain.mode = S_IFDIR | 0777;
  plain.gid = 50;
  setgid.mode = S_IFDIR | 02777;
  setgid.gid = 60;
  const Caller user{1000, 2000, false};

  InodeRecord r{};
  set_new_owner(r, S_IFREG | 0644, plain, user);
  EXPECT_EQ(r.uid, 1000u);
  EXPECT_EQ(r.gid, 2000u);
  EXPECT_EQ(r.mode, S_IFREG | 0644u);

  set_new_owner(r, S_IFREG | 0644, setgid, user);
  EXPECT_EQ(r.uid, 1000u);
  EXPECT_EQ(r.gid, 60u);
  EXPECT_EQ(r.mode, S_IFREG | 0644u);  // a file does not get the bit

  set_new_owner(r, S_IFDIR | 0755, setgid, user);
  EXPECT_EQ(r.gid, 60u);
  EXPECT_EQ(r.mode, S_IFDIR | 02755u);  // a directory keeps it
}

TEST(TmpfsRules, SizesAndPages) {
  EXPECT_EQ(kEmptyDirSize, 40u);
  EXPECT_FALSE(is_long_symlink(127));
  EXPECT_TRUE(is_long_symlink(128));
  EXPECT_EQ(pages_for(0), 0u);
  EXPECT_EQ(pages_for(1), 1u);
  EXPECT_EQ(pages_for(kPageSize), 1u);
  EXPECT_EQ(pages_for(kPageSize + 1), 2u);
}

using TmpfsTimes = PartsTest;

TEST_F(TmpfsTimes, TouchSetsWhichTimes) {
  const timespec t1{100, 1}, t2{200, 2}, t3{300, 3};
  InodeRecord init = record(S_IFREG | 0644);
  stamp_new(init, t1);
  InodeRecord* rp = nullptr;
  in_tx([&](Tx& tx) { rp = inodes_.allocate(tx, quota_, init).value().second; });
  InodeRecord& r = *rp;
  EXPECT_EQ(r.atime_s, 100);
  EXPECT_EQ(r.mtime_s, 100);
  EXPECT_EQ(r.ctime_ns, 1u);
  in_tx([&](Tx& tx) { touch_mc(tx, r, t2); });
  EXPECT_EQ(r.atime_s, 100);
  EXPECT_EQ(r.mtime_s, 200);
  EXPECT_EQ(r.ctime_s, 200);
  in_tx([&](Tx& tx) { touch_c(tx, r, t3); });
  EXPECT_EQ(r.mtime_s, 200);
  EXPECT_EQ(r.ctime_s, 300);
  EXPECT_EQ(get_time(r.ctime_s, r.ctime_ns).tv_nsec, 3);
  {
    Tx tx(region_);
    touch_c(tx, r, t1);
  }  // rolled back
  EXPECT_EQ(r.ctime_s, 300);
}

}  // namespace
}  // namespace hostchanfs::shm::testing
