// hostchanfs_persist_crash_child: attach to a test region (meta memfd on fd 3, data memfd
// on fd 4) and run one mutation, so that a test can kill it with HOSTCHANFS_CRASH_AT as a
// real process would be: the variable is read when the program starts.
//
//   hostchanfs_persist_crash_child insert-small KEY    insert KEY into the deep tree
//   hostchanfs_persist_crash_child count N             N txs, each adding 1 to the counter
//
// Exit status: 0 done, 1 the region was refused (the reason on stderr), 2 usage.
#include <charconv>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "tests/persist/fixture.hpp"

namespace {

using namespace hostchanfs::shm::persist;

int usage() {
  std::fprintf(stderr, "usage: hostchanfs_persist_crash_child insert-small KEY | count N (region on fds 3, 4)\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) return usage();
  std::string_view op(argv[1]), arg(argv[2]);
  std::uint64_t n = 0;
  auto [end, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), n);
  if (ec != std::errc{} || end != arg.data() + arg.size()) return usage();
  if (op != "insert-small" && op != "count") return usage();
  auto region = Region::attach(hostchanfs::UniqueFd(3), {4}, testing::test_schema());
  if (!region) {
    std::fprintf(stderr, "hostchanfs_persist_crash_child: %s\n", region.error().what.c_str());
    return 1;
  }
  Region& r = *region.value();
  if (op == "insert-small") {
    testing::insert_small_and_count(r, n);
  } else {
    for (std::uint64_t i = 0; i < n; ++i) {
      Tx tx(r);
      auto& user = r.user_as<testing::TestUser>();
      tx.set(user.counter, user.counter + 1);
      tx.commit();
    }
  }
  return 0;
}
