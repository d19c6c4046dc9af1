// Shared helpers for the store's unit tests: a fixture that owns a Store, errno-aware
// assertions, and short forms of the calls the tests repeat. Every expected value in these
// tests was first observed on a kernel tmpfs (size=1M, mode=1777), the reference.
#pragma once

#include <gtest/gtest.h>
#include <string.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "shm/store.hpp"
#include "sys/errno_text.hpp"

namespace hostchanfs::shm::testing {

// EXPECT_TRUE(Fails(store.op(...), ENOENT)): the call failed with exactly that errno.
template <class T>
::testing::AssertionResult Fails(const Result<T>& r, int err) {
  if (!r.has_error())
    return ::testing::AssertionFailure() << "succeeded, expected " << errno_name(err);
  if (r.error() != static_cast<std::errc>(err))
    return ::testing::AssertionFailure()
           << "failed with " << errno_name(r.error()) << ", expected " << errno_name(err);
  return ::testing::AssertionSuccess();
}

template <class T>
::testing::AssertionResult Ok(const Result<T>& r) {
  if (r.has_error()) return ::testing::AssertionFailure() << "failed with " << errno_name(r.error());
  return ::testing::AssertionSuccess();
}

// The value of a call that must succeed; a failure ends the test (gtest reports the throw).
template <class T>
T must(Result<T> r, std::string_view what = "store call") {
  if (r.has_error())
    throw std::runtime_error(std::string(what) + " failed: " + errno_name(r.error()));
  if constexpr (!std::is_void_v<T>) return std::move(r).value();
}

inline Caller root_caller() { return Caller{0, 0, true}; }
inline Caller user_caller(uid_t uid, gid_t gid) { return Caller{uid, gid, false}; }

inline std::span<const std::byte> bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

struct Listed {
  std::string name;
  Ino ino;
  mode_t mode;
  std::uint64_t next;
};

class StoreTest : public ::testing::Test {
 protected:
  static constexpr std::uint64_t kMiB = 1ull << 20;

  void SetUp() override { reset_store(StoreOptions{.size_bytes = kMiB}); }

  void reset_store(const StoreOptions& opts) {
    store_.reset();
    store_ = must(Store::create(opts), "Store::create");
  }
  Store& s() { return *store_; }

  // Creation returns with one kernel lookup counted; these helpers give it back at once,
  // as if the kernel forgot, so unlinking later frees the inode.
  Attr create(Ino parent, std::string_view name, mode_t mode = S_IFREG | 0644,
              const Caller& who = root_caller(), dev_t rdev = 0) {
    Attr a = must(s().mknod(parent, name, mode, rdev, who), "mknod");
    s().forget(a.ino, 1);
    return a;
  }
  Attr make_dir(Ino parent, std::string_view name, mode_t mode = 0755,
                const Caller& who = root_caller()) {
    Attr a = must(s().mkdir(parent, name, mode, who), "mkdir");
    s().forget(a.ino, 1);
    return a;
  }
  Attr make_symlink(Ino parent, std::string_view name, std::string_view target) {
    Attr a = must(s().symlink(parent, name, target, root_caller()), "symlink");
    s().forget(a.ino, 1);
    return a;
  }
  Attr hard_link(Ino ino, Ino parent, std::string_view name) {
    Attr a = must(s().link(ino, parent, name), "link");
    s().forget(a.ino, 1);
    return a;
  }
  // Resolve a name without keeping the lookup.
  Result<Attr> peek(Ino parent, std::string_view name) {
    auto r = s().lookup(parent, name);
    if (r) s().forget(r.value().ino, 1);
    return r;
  }
  Attr attr(Ino ino) { return must(s().getattr(ino), "getattr"); }

  Result<std::size_t> write(Ino ino, std::uint64_t off, std::string_view data,
                            const Caller& who = root_caller()) {
    return s().write(ino, off, bytes(data), who);
  }
  // A read of up to `len` bytes into a buffer of its own, for the result alone.
  Result<std::size_t> read_result(Ino ino, std::uint64_t off, std::size_t len) {
    std::vector<std::byte> out(len);
    return s().read(ino, off, out);
  }
  // A buffer as long as the request, up to 64 MiB: asking for SIZE_MAX reads the rest.
  std::string read(Ino ino, std::uint64_t off, std::size_t len) {
    len = std::min<std::size_t>(len, std::size_t{64} << 20);
    std::string out(len, '\0');
    out.resize(must(s().read(ino, off, {reinterpret_cast<std::byte*>(out.data()), len}), "read"));
    return out;
  }
  Result<Attr> set(Ino ino, const AttrChange& c, const Caller& who = root_caller()) {
    return s().setattr(ino, c, who);
  }
  Result<Attr> truncate(Ino ino, std::uint64_t size) {
    AttrChange c;
    c.size = size;
    return set(ino, c);
  }

  // Entries from `offset` on, at most `max` of them (the emitter refuses the next one).
  std::vector<Listed> list(Ino dir, std::uint64_t offset = 0,
                           std::size_t max = std::numeric_limits<std::size_t>::max()) {
    std::vector<Listed> out;
    must(s().readdir(dir, offset, false,
                     [&](const DirEntry& e, const Attr*) {
                       if (out.size() == max) return false;
                       out.push_back({std::string(e.name), e.ino, e.mode, e.next_offset});
                       return true;
                     }),
         "readdir");
    return out;
  }
  std::vector<std::string> names(Ino dir) {
    std::vector<std::string> out;
    for (auto& e : list(dir))
      if (e.name != "." && e.name != "..") out.push_back(e.name);
    return out;
  }

  std::unique_ptr<Store> store_;
};

}  // namespace hostchanfs::shm::testing
