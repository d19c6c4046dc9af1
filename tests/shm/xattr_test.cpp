// Extended attributes: get/set/list/remove, the CREATE/REPLACE flags and the errors tmpfs
// gives (ENODATA, ERANGE, E2BIG, EPERM for user.* on symlinks and FIFOs), and their charge
// against the byte quota (the store's one documented difference from tmpfs).
#include <sys/xattr.h>

#include <algorithm>

#include "tests/shm/store_fixture.hpp"

namespace hostchanfs::shm::testing {
namespace {

class XattrTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    f = create(kRootIno, "f");
  }
  Result<void> setx(Ino ino, std::string_view name, std::string_view value, int flags = 0) {
    return s().setxattr(ino, name, bytes(value), flags);
  }
  std::string getx(Ino ino, std::string_view name) {
    std::size_t size = must(s().getxattr(ino, name, {}), "getxattr size");
    std::string out(size, '\0');
    EXPECT_EQ(must(s().getxattr(ino, name, {reinterpret_cast<std::byte*>(out.data()), size})),
              size);
    return out;
  }
  std::vector<std::string> listx(Ino ino) {
    std::size_t size = must(s().listxattr(ino, {}), "listxattr size");
    std::string buf(size, '\0');
    EXPECT_EQ(must(s().listxattr(ino, {buf.data(), buf.size()})), size);
    std::vector<std::string> out;
    for (std::size_t pos = 0; pos < buf.size();) {
      std::size_t end = buf.find('\0', pos);
      out.push_back(buf.substr(pos, end - pos));
      pos = end + 1;
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  Attr f;
};

TEST_F(XattrTest, SetGetListRemove) {
  EXPECT_EQ(must(s().listxattr(f.ino, {})), 0u);
  ASSERT_TRUE(Ok(setx(f.ino, "user.a", "alpha")));
  ASSERT_TRUE(Ok(setx(f.ino, "user.empty", "")));
  ASSERT_TRUE(Ok(setx(f.ino, "trusted.t", std::string("\0bin\xff", 5))));
  EXPECT_EQ(getx(f.ino, "user.a"), "alpha");
  EXPECT_EQ(getx(f.ino, "user.empty"), "");
  EXPECT_EQ(getx(f.ino, "trusted.t"), std::string("\0bin\xff", 5));
  EXPECT_EQ(must(s().listxattr(f.ino, {})), std::string("user.a\0user.empty\0trusted.t\0", 28).size());
  EXPECT_EQ(listx(f.ino), (std::vector<std::string>{"trusted.t", "user.a", "user.empty"}));
  ASSERT_TRUE(Ok(setx(f.ino, "user.a", "a much longer value")));
  EXPECT_EQ(getx(f.ino, "user.a"), "a much longer value");
  ASSERT_TRUE(Ok(s().removexattr(f.ino, "user.a")));
  EXPECT_TRUE(Fails(s().getxattr(f.ino, "user.a", {}), ENODATA));
  EXPECT_TRUE(Fails(s().removexattr(f.ino, "user.a"), ENODATA));
  EXPECT_EQ(listx(f.ino), (std::vector<std::string>{"trusted.t", "user.empty"}));
}

TEST_F(XattrTest, CreateAndReplaceFlags) {
  EXPECT_TRUE(Fails(setx(f.ino, "user.x", "1", XATTR_REPLACE), ENODATA));
  ASSERT_TRUE(Ok(setx(f.ino, "user.x", "1", XATTR_CREATE)));
  EXPECT_TRUE(Fails(setx(f.ino, "user.x", "2", XATTR_CREATE), EEXIST));
  EXPECT_EQ(getx(f.ino, "user.x"), "1");
  ASSERT_TRUE(Ok(setx(f.ino, "user.x", "3", XATTR_REPLACE)));
  EXPECT_EQ(getx(f.ino, "user.x"), "3");
  EXPECT_EQ(listx(f.ino), std::vector<std::string>{"user.x"});
}

TEST_F(XattrTest, SizeErrors) {
  ASSERT_TRUE(Ok(setx(f.ino, "user.v", "value")));
  std::byte small[4];
  EXPECT_TRUE(Fails(s().getxattr(f.ino, "user.v", small), ERANGE));
  char list_small[3];
  EXPECT_TRUE(Fails(s().listxattr(f.ino, list_small), ERANGE));
  EXPECT_TRUE(Fails(s().getxattr(f.ino, "user.none", {}), ENODATA));
  // Values up to 64 KiB, names up to 255 bytes.
  EXPECT_TRUE(Ok(setx(f.ino, "user.big", std::string(kXattrValueMax, 'v'))));
  EXPECT_EQ(must(s().getxattr(f.ino, "user.big", {})), kXattrValueMax);
  EXPECT_TRUE(Fails(setx(f.ino, "user.big2", std::string(kXattrValueMax + 1, 'v')), E2BIG));
  std::string n255 = "user." + std::string(250, 'n'), n256 = n255 + "n";
  EXPECT_TRUE(Ok(setx(f.ino, n255, "v")));
  EXPECT_TRUE(Fails(setx(f.ino, n256, "v"), ERANGE));
  EXPECT_TRUE(Fails(s().getxattr(f.ino, n256, {}), ERANGE));
  EXPECT_EQ(getx(f.ino, n255), "v");
}

TEST_F(XattrTest, UnknownNamespacesAreNotSupported) {
  EXPECT_TRUE(Fails(setx(f.ino, "foo.x", "1"), EOPNOTSUPP));
  EXPECT_TRUE(Fails(s().getxattr(f.ino, "foo.x", {}), EOPNOTSUPP));
  EXPECT_TRUE(Ok(setx(f.ino, "security.s", "1")));  // tmpfs keeps security.* too
  EXPECT_EQ(getx(f.ino, "security.s"), "1");
}

TEST_F(XattrTest, UserXattrsOnlyOnFilesAndDirectories) {
  Attr d = make_dir(kRootIno, "d");
  Attr sl = make_symlink(kRootIno, "s", "f");
  Attr fifo = create(kRootIno, "p", S_IFIFO | 0644);
  Attr sock = create(kRootIno, "k", S_IFSOCK | 0644);
  EXPECT_TRUE(Ok(setx(d.ino, "user.a", "1")));
  for (Ino ino : {sl.ino, fifo.ino, sock.ino}) {
    SCOPED_TRACE(ino);
    EXPECT_TRUE(Fails(setx(ino, "user.a", "1"), EPERM));
    EXPECT_TRUE(Ok(setx(ino, "trusted.a", "1")));  // tmpfs allows trusted.* there
    EXPECT_EQ(getx(ino, "trusted.a"), "1");
  }
}

TEST_F(XattrTest, XattrsAreChargedToTheQuota) {
  std::uint64_t before = s().pages_used();
  ASSERT_TRUE(Ok(setx(f.ino, "user.big", std::string(kXattrValueMax, 'v'))));
  EXPECT_GE(s().pages_used(), before + kXattrValueMax / kPageSize);
  EXPECT_EQ(attr(f.ino).blocks, 0u);  // not file data
  ASSERT_TRUE(Ok(s().removexattr(f.ino, "user.big")));
  EXPECT_EQ(s().pages_used(), before);

  // When the quota is full, a new xattr fails and changes nothing.
  Attr g = create(kRootIno, "g");
  ASSERT_EQ(must(write(g.ino, 0, std::string(kMiB, 'x'))), kMiB);
  EXPECT_TRUE(Fails(setx(f.ino, "user.n", "v"), ENOSPC));
  EXPECT_TRUE(Fails(s().getxattr(f.ino, "user.n", {}), ENODATA));
  EXPECT_EQ(must(s().listxattr(f.ino, {})), 0u);
  ASSERT_TRUE(Ok(truncate(g.ino, 0)));
  ASSERT_TRUE(Ok(setx(f.ino, "user.n", "v")));
  // Freed with the inode.
  ASSERT_TRUE(Ok(s().unlink(kRootIno, "f")));
  EXPECT_EQ(s().pages_used(), 0u);
}

TEST_F(XattrTest, AFailedReplaceKeepsTheOldValue) {
  ASSERT_TRUE(Ok(setx(f.ino, "user.r", "old")));
  Attr g = create(kRootIno, "g");
  ASSERT_EQ(must(write(g.ino, 0, std::string(kMiB, 'x'))), kMiB - kPageSize);  // one page is the xattr's
  const std::uint64_t used = s().pages_used();
  EXPECT_TRUE(Fails(setx(f.ino, "user.r", std::string(3 * kPageSize, 'n'), XATTR_REPLACE), ENOSPC));
  EXPECT_EQ(getx(f.ino, "user.r"), "old");
  EXPECT_EQ(s().pages_used(), used);
  // A smaller value fits in the page already charged.
  ASSERT_TRUE(Ok(setx(f.ino, "user.r", "new")));
  EXPECT_EQ(getx(f.ino, "user.r"), "new");
}

// The fixed metadata region must hold whatever the limits allow: every inode with a
// 255-byte name, then tiny xattrs until the byte quota (not the region) says ENOSPC.
class XattrFill : public XattrTest, public ::testing::WithParamInterface<StoreOptions> {};

TEST_P(XattrFill, TheQuotaRunsOutBeforeTheMetadataRegion) {
  reset_store(GetParam());
  f = create(kRootIno, "f");
  std::vector<Ino> files{f.ino};
  for (std::uint64_t i = 2; i < s().max_inodes(); ++i) {
    std::string n = std::to_string(i);
    n += std::string(kNameMax - n.size(), 'n');
    files.push_back(create(kRootIno, n).ino);
  }
  EXPECT_EQ(s().statfs().files_free, 0u);
  std::uint64_t set = 0;
  for (int round = 0;; ++round) {
    bool any = false;
    for (Ino ino : files) {
      auto r = setx(ino, "user." + std::to_string(round), "");
      if (!r) {
        ASSERT_EQ(r.error(), std::errc::no_space_on_device);
        continue;
      }
      any = true;
      ++set;
    }
    if (!any) break;
    ASSERT_LT(round, 100000);
  }
  EXPECT_EQ(s().pages_used(), s().quota_pages()) << set << " xattrs set";
  // Data pages are gone, the inodes and names are all still there.
  Attr g = must(peek(kRootIno, "2" + std::string(kNameMax - 1, 'n')));
  EXPECT_TRUE(Fails(write(g.ino, 0, "x"), ENOSPC));
}

// Many inodes sharing a small quota, and few inodes with long xattr lists.
INSTANTIATE_TEST_SUITE_P(Shapes, XattrFill,
                         ::testing::Values(StoreOptions{.size_bytes = 1 << 20},
                                           StoreOptions{.size_bytes = 1 << 20, .max_inodes = 8}));

}  // namespace
}  // namespace hostchanfs::shm::testing
