#include "shm/tmpfs_rules.hpp"

namespace hostchanfs::shm {

Result<void> check_name(std::string_view name) {
  if (name.empty()) return std::errc::no_such_file_or_directory;
  if (name.size() > kNameMax) return std::errc::filename_too_long;
  if (name.find('/') != std::string_view::npos) return std::errc::invalid_argument;
  return success();
}

void set_new_owner(InodeRecord& r, mode_t mode, const InodeRecord& parent, const Caller& caller) {
  r.uid = caller.uid;
  r.gid = caller.gid;
  if (parent.mode & S_ISGID) {
    r.gid = parent.gid;
    if (S_ISDIR(mode)) mode |= S_ISGID;
  }
  r.mode = mode;
}

timespec now() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return ts;
}

}  // namespace hostchanfs::shm
