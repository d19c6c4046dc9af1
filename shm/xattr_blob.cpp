#include "shm/xattr_blob.hpp"

namespace hostchanfs::shm {

void XattrBlob::encode(std::vector<std::byte>& out, std::string_view name, std::span<const std::byte> value) {
  std::byte header[kXattrHeader] = {};
  header[0] = static_cast<std::byte>(name.size());
  const auto len = static_cast<std::uint32_t>(value.size());
  std::memcpy(header + 4, &len, sizeof len);
  const auto* n = reinterpret_cast<const std::byte*>(name.data());
  out.insert(out.end(), header, header + kXattrHeader);
  out.insert(out.end(), n, n + name.size());
  out.insert(out.end(), value.begin(), value.end());
}

std::optional<XattrEntry> XattrBlob::entry_at(std::size_t at) const {
  if (bytes_.size() - at < kXattrHeader) return std::nullopt;
  const std::size_t name_len = std::to_integer<std::size_t>(bytes_[at]);
  std::uint32_t value_len = 0;
  std::memcpy(&value_len, bytes_.data() + at + 4, sizeof value_len);
  const std::size_t size = entry_size(name_len, value_len);
  if (name_len == 0 || bytes_.size() - at < size) return std::nullopt;
  XattrEntry e;
  e.offset = at;
  e.size = size;
  e.name = std::string_view(reinterpret_cast<const char*>(bytes_.data() + at + kXattrHeader), name_len);
  e.value = bytes_.subspan(at + kXattrHeader + name_len, value_len);
  return e;
}

std::optional<XattrEntry> XattrBlob::find(std::string_view name) const {
  std::optional<XattrEntry> found;
  for_each([&](const XattrEntry& e) {
    if (e.name != name) return true;
    found = e;
    return false;
  });
  return found;
}

}  // namespace hostchanfs::shm
