#include "sys/size.hpp"

#include <gtest/gtest.h>

namespace hostchanfs {
namespace {

TEST(ParseSize, AcceptsBytesAndSuffixesInAnyCase) {
  EXPECT_EQ(parse_size("4096").value(), 4096u);
  EXPECT_EQ(parse_size("0").value(), 0u);
  EXPECT_EQ(parse_size("64k").value(), 64u << 10);
  EXPECT_EQ(parse_size("64KB").value(), 64u << 10);
  EXPECT_EQ(parse_size("32M").value(), 32u << 20);
  EXPECT_EQ(parse_size("32m").value(), 32u << 20);
  EXPECT_EQ(parse_size("32mb").value(), 32u << 20);
  EXPECT_EQ(parse_size("32MB").value(), 32u << 20);
  EXPECT_EQ(parse_size("32mB").value(), 32u << 20);
  EXPECT_EQ(parse_size("1g").value(), 1ull << 30);
  EXPECT_EQ(parse_size("1GB").value(), 1ull << 30);
  EXPECT_EQ(parse_size("100b").value(), 100u);
}

TEST(ParseSize, RefusesWhatIsNotASize) {
  for (const char* bad : {"", "k", "m", "-1", "+1", " 1", "1 ", "1.5m", "1t", "1kk", "1kbb", "0x10", "1mib"})
    EXPECT_EQ(parse_size(bad).error(), std::errc::invalid_argument) << "'" << bad << "'";
}

TEST(ParseSize, RefusesOverflow) {
  EXPECT_EQ(parse_size("18446744073709551615").value(), 18446744073709551615ull);
  EXPECT_EQ(parse_size("18446744073709551616").error(), std::errc::result_out_of_range);
  EXPECT_EQ(parse_size("17179869184g").error(), std::errc::result_out_of_range);
  EXPECT_EQ(parse_size("17179869183g").value(), 17179869183ull << 30);
}

}  // namespace
}  // namespace hostchanfs
