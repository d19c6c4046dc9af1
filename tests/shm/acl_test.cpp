// The ACL rules on their own (shm/acl.hpp): the kernel's wire form checked as
// posix_acl_from_xattr and posix_acl_valid check it, and the mode sync of
// posix_acl_equiv_mode, posix_acl_chmod and posix_acl_create_masq, with the values the
// kernel's code gives for the same input.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <vector>

#include "shm/acl.hpp"
#include "tests/shm/store_fixture.hpp"

namespace hostchanfs::shm::testing {
namespace {

using acl::Entry;

std::vector<std::byte> acl_of(std::vector<Entry> entries) { return acl::encoded(entries); }

// u::rw-,u:65534:r--,g::r--,m::r--,o::r-- (what `setfacl -m u:65534:r f` makes of 0644).
std::vector<Entry> named_user() {
  return {{acl::kUserObj, 6}, {acl::kUser, 4, 65534}, {acl::kGroupObj, 4}, {acl::kMask, 4}, {acl::kOther, 4}};
}

std::vector<std::uint16_t> perms_of(std::span<const std::byte> a) {
  std::vector<std::uint16_t> out;
  for (std::size_t at = acl::kHeaderSize; at < a.size(); at += acl::kEntrySize) {
    std::uint16_t p;
    std::memcpy(&p, a.data() + at + 2, 2);
    out.push_back(p);
  }
  return out;
}

TEST(Acl, TheWireFormIsTheKernels) {
  auto a = acl_of({{acl::kUserObj, 6}, {acl::kUser, 4, 65534}});
  const std::vector<std::uint8_t> want = {2, 0, 0, 0, 0x01, 0, 6, 0, 0xff, 0xff, 0xff, 0xff,
                                          0x02, 0, 4, 0, 0xfe, 0xff, 0, 0};
  ASSERT_EQ(a.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_EQ(std::to_integer<std::uint8_t>(a[i]), want[i]) << i;
}

TEST(Acl, ValidateTakesWhatTheKernelTakes) {
  EXPECT_TRUE(Ok(acl::validate(acl_of(named_user()))));
  EXPECT_TRUE(Ok(acl::validate(acl_of({{acl::kUserObj, 7}, {acl::kGroupObj, 5}, {acl::kOther, 0}}))));
  EXPECT_TRUE(Ok(acl::validate(acl_of({}))));  // a header alone: no ACL
  EXPECT_TRUE(Ok(acl::validate(acl_of(
      {{acl::kUserObj, 7}, {acl::kGroupObj, 5}, {acl::kGroup, 1, 10}, {acl::kMask, 5}, {acl::kOther, 0}}))));
}

TEST(Acl, ValidateRefusesWhatTheKernelRefuses) {
  auto bad_version = acl_of(named_user());
  bad_version[0] = std::byte{1};
  EXPECT_TRUE(Fails(acl::validate(bad_version), EOPNOTSUPP));
  auto ragged = acl_of(named_user());
  ragged.pop_back();
  EXPECT_TRUE(Fails(acl::validate(ragged), EINVAL));
  EXPECT_TRUE(Fails(acl::validate(std::vector<std::byte>(2)), EINVAL));
  const std::vector<std::vector<Entry>> refused = {
      {{acl::kUserObj, 6}, {acl::kGroupObj, 4}},                                        // no OTHER
      {{acl::kGroupObj, 4}, {acl::kUserObj, 6}, {acl::kOther, 4}},                      // order
      {{acl::kUserObj, 6}, {acl::kUser, 4, 1}, {acl::kGroupObj, 4}, {acl::kOther, 4}},  // no MASK
      {{acl::kUserObj, 6}, {acl::kGroupObj, 4}, {acl::kUser, 4, 1}, {acl::kMask, 4}, {acl::kOther, 4}},
      {{acl::kUserObj, 010}, {acl::kGroupObj, 4}, {acl::kOther, 4}},                    // perm bit
      {{acl::kUserObj, 6}, {0x40, 4}, {acl::kGroupObj, 4}, {acl::kOther, 4}},           // tag
      {{acl::kUserObj, 6}, {acl::kUserObj, 6}, {acl::kGroupObj, 4}, {acl::kOther, 4}},  // twice
      {{acl::kUserObj, 6}, {acl::kGroupObj, 4}, {acl::kOther, 4}, {acl::kOther, 4}},
      {{acl::kUserObj, 6}, {acl::kUser, 4}, {acl::kGroupObj, 4}, {acl::kMask, 4}, {acl::kOther, 4}},  // no id
  };
  for (std::size_t i = 0; i < refused.size(); ++i)
    EXPECT_TRUE(Fails(acl::validate(acl_of(refused[i])), EINVAL)) << "case " << i;
}

TEST(Acl, TheModeFollowsAnAccessAcl) {
  mode_t mode = S_IFREG | S_ISGID | 0777;
  EXPECT_TRUE(acl::apply_to_mode(acl_of(named_user()), mode));  // a mask: more than the mode
  EXPECT_EQ(mode, S_IFREG | S_ISGID | 0644);                      // the group class is the mask
  mode = S_IFREG | 0;
  EXPECT_FALSE(acl::apply_to_mode(acl_of({{acl::kUserObj, 7}, {acl::kGroupObj, 5}, {acl::kOther, 1}}), mode));
  EXPECT_EQ(mode, S_IFREG | 0751);
  mode = S_IFDIR | 0700;
  EXPECT_TRUE(acl::apply_to_mode(acl_of({{acl::kUserObj, 7}, {acl::kGroupObj, 7}, {acl::kMask, 1}, {acl::kOther, 0}}), mode));
  EXPECT_EQ(mode, S_IFDIR | 0710);
}

TEST(Acl, ChmodRewritesOwnerGroupClassAndOther) {
  auto a = acl_of(named_user());
  acl::chmod(a, S_IFREG | 0751);
  // USER_OBJ, the named user untouched, GROUP_OBJ untouched (there is a mask), MASK, OTHER.
  EXPECT_EQ(perms_of(a), (std::vector<std::uint16_t>{7, 4, 4, 5, 1}));
  auto plain = acl_of({{acl::kUserObj, 6}, {acl::kGroupObj, 4}, {acl::kOther, 4}});
  acl::chmod(plain, 0705);
  EXPECT_EQ(perms_of(plain), (std::vector<std::uint16_t>{7, 0, 5}));
}

TEST(Acl, CreateMasksTheDefaultByTheModeAndTheModeByTheDefault) {
  // d:u::rwx,d:u:65534:rwx,d:g::r-x,d:m::rwx,d:o::--- and open(..., 0666).
  auto a = acl_of({{acl::kUserObj, 7}, {acl::kUser, 7, 65534}, {acl::kGroupObj, 5}, {acl::kMask, 7}, {acl::kOther, 0}});
  mode_t mode = S_IFREG | 0666;
  EXPECT_TRUE(acl::create_masq(a, mode));
  EXPECT_EQ(mode, S_IFREG | 0660);
  EXPECT_EQ(perms_of(a), (std::vector<std::uint16_t>{6, 7, 5, 6, 0}));  // named entries stay
  // Without named entries or a mask the result is the mode alone.
  auto plain = acl_of({{acl::kUserObj, 7}, {acl::kGroupObj, 0}, {acl::kOther, 5}});
  mode = S_IFDIR | 0777;
  EXPECT_FALSE(acl::create_masq(plain, mode));
  EXPECT_EQ(mode, S_IFDIR | 0705);
}

}  // namespace
}  // namespace hostchanfs::shm::testing
