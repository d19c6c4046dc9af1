#include "sys/dirs.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace hostchanfs {

MakeDirsResult<std::vector<std::string>> make_dirs(std::string_view path, mode_t mode,
                                                   mode_t last_mode) {
  std::vector<std::string> made;
  std::size_t pos = 0;
  while (pos != std::string_view::npos) {
    pos = path.find('/', pos + 1);
    std::string prefix(path.substr(0, pos));
    bool last = pos == std::string_view::npos;
    if (::mkdir(prefix.c_str(), last ? last_mode : mode) == 0) {
      made.push_back(std::move(prefix));
      continue;
    }
    std::errc error = last_errc();
    if (error == std::errc::file_exists) {
      struct stat st {};
      if (::stat(prefix.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) continue;
      error = std::errc::not_a_directory;
    }
    remove_dirs(made);
    return MakeDirsError{error, std::move(prefix)};
  }
  return made;
}

void remove_dirs(const std::vector<std::string>& made) noexcept {
  for (auto it = made.rbegin(); it != made.rend(); ++it) ::rmdir(it->c_str());
}

}  // namespace hostchanfs
