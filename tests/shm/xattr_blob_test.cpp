// XattrBlob: entries encoded back to back, found by name, walked in order, and a malformed
// blob (an entry that runs past the end) reported rather than read past.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "shm/quota.hpp"
#include "shm/xattr_blob.hpp"

namespace hostchanfs::shm::testing {
namespace {

std::span<const std::byte> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

TEST(XattrBlob, EntriesAreFoundByNameAndWalkedInOrder) {
  std::vector<std::byte> blob;
  XattrBlob::encode(blob, "user.a", bytes_of("alpha"));
  XattrBlob::encode(blob, "user.empty", {});
  XattrBlob::encode(blob, "trusted.t", bytes_of(std::string("\0bin", 4)));
  EXPECT_EQ(blob.size(), XattrBlob::entry_size(6, 5) + XattrBlob::entry_size(10, 0) + XattrBlob::entry_size(9, 4));
  XattrBlob view(blob);
  auto a = view.find("user.a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->offset, 0u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(a->value.data()), a->value.size()), "alpha");
  auto t = view.find("trusted.t");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->value.size(), 4u);
  EXPECT_EQ(t->offset + t->size, blob.size());
  EXPECT_FALSE(view.find("user.b"));
  EXPECT_FALSE(view.find("user."));  // a prefix is not a name
  std::vector<std::string> names;
  EXPECT_TRUE(view.for_each([&](const XattrEntry& e) {
    names.emplace_back(e.name);
    return true;
  }));
  EXPECT_EQ(names, (std::vector<std::string>{"user.a", "user.empty", "trusted.t"}));
}

TEST(XattrBlob, AnEntryNeverCostsMoreThanItsCharge) {
  for (std::size_t name : {1, 255})
    for (std::size_t value : {0, 1, 65536}) EXPECT_LT(XattrBlob::entry_size(name, value), xattr_cost(name, value));
}

TEST(XattrBlob, AMalformedBlobIsReportedNotReadPast) {
  std::vector<std::byte> blob;
  XattrBlob::encode(blob, "user.a", bytes_of("alpha"));
  blob.resize(blob.size() - 1);  // the value is cut short
  EXPECT_FALSE(XattrBlob(blob).for_each([](const XattrEntry&) { return true; }));
  EXPECT_FALSE(XattrBlob(blob).find("user.a"));
}

}  // namespace
}  // namespace hostchanfs::shm::testing
