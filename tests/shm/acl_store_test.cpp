// POSIX ACLs in the store, as tmpfs keeps them: an access ACL sets the mode (and one the
// mode says in full is no xattr), a chmod rewrites it, removing one that is absent
// succeeds, a default ACL is inherited by new files and directories (else the umask
// applies), and the kernel's KILL_SGID drops setgid. The same rules through a mount,
// compared with tmpfs: tests/fs/acl_test.cpp.
#include <sys/stat.h>

#include <vector>

#include "shm/acl.hpp"
#include "tests/shm/store_fixture.hpp"

namespace hostchanfs::shm::testing {
namespace {

using acl::Entry;

std::vector<std::byte> acl_of(std::vector<Entry> entries) { return acl::encoded(entries); }

class AclStoreTest : public StoreTest {
 protected:
  std::vector<std::byte> get(Ino ino, std::string_view name) {
    std::vector<std::byte> out(must(s().getxattr(ino, name, {}), "getxattr size"));
    must(s().getxattr(ino, name, out), "getxattr");
    return out;
  }
  bool has(Ino ino, std::string_view name) { return static_cast<bool>(s().getxattr(ino, name, {})); }
  Attr chmod(Ino ino, mode_t mode) {
    AttrChange c;
    c.mode = mode;
    return must(set(ino, c), "chmod");
  }
};

const std::vector<Entry> kNamedUser = {
    {acl::kUserObj, 6}, {acl::kUser, 4, 65534}, {acl::kGroupObj, 4}, {acl::kMask, 4}, {acl::kOther, 4}};

TEST_F(AclStoreTest, AnAccessAclSetsTheModeAndAMinimalOneIsNoXattr) {
  Attr f = create(kRootIno, "f", S_IFREG | 0600);
  ASSERT_TRUE(Ok(s().setxattr(f.ino, acl::kAccessName, acl_of(kNamedUser), 0)));
  EXPECT_EQ(attr(f.ino).mode, S_IFREG | 0644);
  EXPECT_EQ(get(f.ino, acl::kAccessName), acl_of(kNamedUser));
  // u::rwx,g::r-x,o::--- says no more than 0750: the xattr goes, the mode stays in step.
  ASSERT_TRUE(Ok(s().setxattr(f.ino, acl::kAccessName,
                              acl_of({{acl::kUserObj, 7}, {acl::kGroupObj, 5}, {acl::kOther, 0}}), 0)));
  EXPECT_EQ(attr(f.ino).mode, S_IFREG | 0750);
  EXPECT_FALSE(has(f.ino, acl::kAccessName));
  EXPECT_TRUE(Ok(s().removexattr(f.ino, acl::kAccessName)));  // none there: still fine
  EXPECT_TRUE(Fails(s().removexattr(f.ino, "user.none"), ENODATA));
}

TEST_F(AclStoreTest, BadAclsAreRefusedAndChangeNothing) {
  Attr f = create(kRootIno, "f", S_IFREG | 0600);
  auto bad = acl_of(kNamedUser);
  bad[0] = std::byte{3};
  EXPECT_TRUE(Fails(s().setxattr(f.ino, acl::kAccessName, bad, 0), EOPNOTSUPP));
  EXPECT_TRUE(Fails(s().setxattr(f.ino, acl::kAccessName, acl_of({{acl::kUserObj, 6}}), 0), EINVAL));
  EXPECT_TRUE(Fails(s().setxattr(f.ino, acl::kDefaultName, acl_of(kNamedUser), 0), EACCES));  // not a dir
  EXPECT_TRUE(Fails(s().setxattr(f.ino, "system.other", acl_of(kNamedUser), 0), EOPNOTSUPP));
  EXPECT_EQ(attr(f.ino).mode, S_IFREG | 0600);
  EXPECT_EQ(must(s().listxattr(f.ino, {})), 0u);
}

TEST_F(AclStoreTest, ChmodCarriesTheAccessAclAlong) {
  Attr f = create(kRootIno, "f", S_IFREG | 0644);
  ASSERT_TRUE(Ok(s().setxattr(f.ino, acl::kAccessName, acl_of(kNamedUser), 0)));
  const std::uint64_t used = s().pages_used();
  EXPECT_EQ(chmod(f.ino, 0570).mode, S_IFREG | 0570);
  EXPECT_EQ(get(f.ino, acl::kAccessName),
            acl_of({{acl::kUserObj, 5}, {acl::kUser, 4, 65534}, {acl::kGroupObj, 4}, {acl::kMask, 7}, {acl::kOther, 0}}));
  EXPECT_EQ(s().pages_used(), used);
}

TEST_F(AclStoreTest, KillSgidDropsSetgidWithAnAccessAclOnly) {
  Attr d = make_dir(kRootIno, "d", S_IFDIR | 02755);
  ASSERT_TRUE(Ok(s().setxattr(d.ino, acl::kDefaultName, acl_of(kNamedUser), 0, {}, true)));
  EXPECT_EQ(attr(d.ino).mode, S_IFDIR | 02755);
  ASSERT_TRUE(Ok(s().setxattr(d.ino, acl::kAccessName, acl_of(kNamedUser), 0, {}, true)));
  EXPECT_EQ(attr(d.ino).mode, S_IFDIR | 0644);
}

TEST_F(AclStoreTest, NewInodesInheritTheDefaultAclOrElseTheUmask) {
  const Caller masked{0, 0, true, 077};
  Attr plain = must(s().mkdir(kRootIno, "plain", S_IFDIR | 0777, masked));
  EXPECT_EQ(plain.mode, S_IFDIR | 0700);
  Attr d = make_dir(kRootIno, "d", S_IFDIR | 0755);
  const auto def = acl_of({{acl::kUserObj, 7}, {acl::kUser, 7, 65534}, {acl::kGroupObj, 5}, {acl::kMask, 7}, {acl::kOther, 0}});
  ASSERT_TRUE(Ok(s().setxattr(d.ino, acl::kDefaultName, def, 0)));
  EXPECT_EQ(attr(d.ino).mode, S_IFDIR | 0755);  // a default ACL leaves the mode alone
  const std::uint64_t used = s().pages_used();
  // The umask does not apply under a default ACL; the mode asked for masks the ACL.
  Attr f = must(s().create_and_open(d.ino, "f", 0666, masked));
  s().release(f.ino);
  EXPECT_EQ(f.mode, S_IFREG | 0660);
  EXPECT_EQ(get(f.ino, acl::kAccessName),
            acl_of({{acl::kUserObj, 6}, {acl::kUser, 7, 65534}, {acl::kGroupObj, 5}, {acl::kMask, 6}, {acl::kOther, 0}}));
  EXPECT_FALSE(has(f.ino, acl::kDefaultName));
  Attr sub = must(s().mkdir(d.ino, "sub", S_IFDIR | 0777, masked));
  EXPECT_EQ(sub.mode, S_IFDIR | 0770);
  EXPECT_EQ(get(sub.ino, acl::kDefaultName), def);
  EXPECT_TRUE(has(sub.ino, acl::kAccessName));
  Attr sl = must(s().symlink(d.ino, "l", "f", masked));
  EXPECT_EQ(sl.mode, S_IFLNK | 0777);
  EXPECT_EQ(must(s().listxattr(sl.ino, {})), 0u);
  EXPECT_GT(s().pages_used(), used);  // inherited xattrs are charged as any others
  EXPECT_EQ(s().verify(), std::nullopt);
}

}  // namespace
}  // namespace hostchanfs::shm::testing
