// XattrBlob: an inode's xattrs packed into one byte string (its "blob"), which lives in
// the inode's data pages of fork 1 (charged to the quota, never in the meta region):
//   entry = [u8 name length][u8 0][u16 0][u32 value length][name][value], back to back.
// An entry's 8-byte header is below the 64 bytes each xattr is charged beyond its name
// and value (kXattrOverhead), so the blob never needs more pages than its charge pays for:
// the data pool cannot run out before the quota does.
//
// This part only encodes and decodes; the store reads the blob's pages, edits the bytes
// in memory, and writes back the part that changed in one tx (store_xattrs.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace hostchanfs::shm {

inline constexpr std::size_t kXattrHeader = 8;

struct XattrEntry {
  std::size_t offset = 0, size = 0;  // where the entry lies in the blob, header included
  std::string_view name;
  std::span<const std::byte> value;
};

class XattrBlob {
 public:
  explicit XattrBlob(std::span<const std::byte> bytes) noexcept : bytes_(bytes) {}

  static constexpr std::size_t entry_size(std::size_t name_len, std::size_t value_len) {
    return kXattrHeader + name_len + value_len;
  }
  // Append one entry to `out`.
  static void encode(std::vector<std::byte>& out, std::string_view name, std::span<const std::byte> value);

  // Each entry in order while f(entry) returns true; false when the blob is malformed (an
  // entry runs past its end).
  template <class F>
  bool for_each(F&& f) const {
    for (std::size_t at = 0; at < bytes_.size();) {
      auto e = entry_at(at);
      if (!e) return false;
      if (!f(*e)) return true;
      at += e->size;
    }
    return true;
  }
  std::optional<XattrEntry> find(std::string_view name) const;

 private:
  std::optional<XattrEntry> entry_at(std::size_t at) const;
  std::span<const std::byte> bytes_;
};

}  // namespace hostchanfs::shm
