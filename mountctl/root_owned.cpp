#include "mountctl/root_owned.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "sys/errno_text.hpp"

namespace hostchanfs::mountctl {

std::optional<std::string> not_root_only(const struct stat& st, bool sticky_ok) {
  if (st.st_uid != 0) return fmt::format("is owned by uid {}", st.st_uid);
  bool sticky = S_ISDIR(st.st_mode) && (st.st_mode & S_ISVTX);
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(sticky_ok && sticky)) {
    return fmt::format("is writable by {} (mode {:04o})",
                       (st.st_mode & S_IWOTH) ? "others" : "its group", st.st_mode & 07777);
  }
  return std::nullopt;
}

std::optional<std::string> untrusted_directory(const std::vector<DirStep>& steps) {
  for (const DirStep& step : steps) {
    if (auto why = not_root_only(step.st, /*sticky_ok=*/true)) return step.path + " " + *why;
  }
  return std::nullopt;
}

Expected<UniqueFd> open_root_file(int dirfd, const char* name, const std::string& path, int flags) {
  // O_NONBLOCK: a FIFO put in its place must not stall us (regular files ignore it).
  UniqueFd fd(::openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600));
  if (!fd) {
    auto e = last_errc();
    if (e == std::errc::no_such_file_or_directory) return Error::not_found(path + " does not exist");
    if (e == std::errc::too_many_symbolic_link_levels) {
      return Error::bad_input(fmt::format("{} is a symlink: remove it (it is never followed)", path));
    }
    return Error::failure(fmt::format("cannot open {}: {}", path, errno_text(e)));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) < 0) {
    return Error::failure(fmt::format("cannot stat {}: {}", path, errno_text(last_errc())));
  }
  if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || not_root_only(st)) {
    return Error::bad_input(fmt::format(
        "{} is not a plain file of root's (a regular file with one link, writable by root "
        "only): remove it", path));
  }
  ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
  return fd;
}

std::string what_is_wrong(const PathError& e) {
  switch (e.error) {
    case std::errc::too_many_symbolic_link_levels: return e.path + " is a symlink";
    case std::errc::not_a_directory: return e.path + " is not a directory";
    case std::errc::no_such_file_or_directory: return e.path + " does not exist";
    case std::errc::resource_unavailable_try_again:
      return e.path + " was replaced while it was being made (a racing rename)";
    default: return e.path + ": " + errno_text(e.error);
  }
}

}  // namespace hostchanfs::mountctl
