#include "mountctl/bundle_watch.hpp"

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>

#include "sys/errno_text.hpp"

namespace hostchanfs::mountctl {

namespace {

// The directory at `path` as it is now, or nullopt when there is none.
std::optional<FileId> directory_id(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) < 0 || !S_ISDIR(st.st_mode)) return std::nullopt;
  return file_id(st);
}

}  // namespace

Expected<BundleWatch> BundleWatch::open() {
  UniqueFd fd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!fd) return Error::failure(fmt::format("cannot watch bundles: inotify_init1: {}", errno_text(last_errc())));
  return BundleWatch(std::move(fd));
}

Expected<FileId> BundleWatch::add(const std::string& bundle, const Key& key,
                                  std::optional<FileId> expect) {
  // By descriptor: the watch is on the directory whose identity we read.
  UniqueFd dir(::open(bundle.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  struct stat st {};
  if (!dir || ::fstat(dir.get(), &st) < 0) {
    return Error::not_found(fmt::format("bundle {}: {}", bundle, errno_text(last_errc())));
  }
  FileId id = file_id(st);
  if (expect && !(*expect == id)) {
    return Error::not_found(fmt::format("bundle {} is another directory than the container's", bundle));
  }
  std::string by_fd = fmt::format("/proc/self/fd/{}", dir.get());
  int wd = ::inotify_add_watch(inotify_.get(), by_fd.c_str(), IN_DELETE_SELF | IN_ONLYDIR);
  if (wd < 0) {
    return Error::failure(fmt::format("cannot watch bundle {}: {}", bundle, errno_text(last_errc())));
  }
  Watched& w = watched_[wd];  // the same directory twice gives the same descriptor
  w.path = bundle;
  w.id = id;
  if (std::find(w.keys.begin(), w.keys.end(), key) == w.keys.end()) w.keys.push_back(key);
  return id;
}

void BundleWatch::remove(const Key& key) {
  for (auto it = watched_.begin(); it != watched_.end();) {
    auto& keys = it->second.keys;
    keys.erase(std::remove(keys.begin(), keys.end(), key), keys.end());
    if (keys.empty()) {
      ::inotify_rm_watch(inotify_.get(), it->first);
      it = watched_.erase(it);
    } else {
      ++it;
    }
  }
}

std::vector<BundleWatch::Key> BundleWatch::recheck_all() {
  std::vector<Key> gone;
  for (auto it = watched_.begin(); it != watched_.end();) {
    auto now = directory_id(it->second.path);
    if (now && *now == it->second.id) {
      ++it;
      continue;
    }
    gone.insert(gone.end(), it->second.keys.begin(), it->second.keys.end());
    ::inotify_rm_watch(inotify_.get(), it->first);
    it = watched_.erase(it);
  }
  return gone;
}

std::vector<BundleWatch::Key> BundleWatch::gone() {
  std::vector<Key> gone;
  alignas(inotify_event) char buf[4096];
  for (;;) {
    ssize_t n = ::read(inotify_.get(), buf, sizeof buf);
    if (n <= 0) break;  // EAGAIN: all read
    for (ssize_t at = 0; at < n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf + at);
      at += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      if (ev->mask & IN_Q_OVERFLOW) {
        auto all = recheck_all();
        gone.insert(gone.end(), all.begin(), all.end());
        continue;
      }
      if (!(ev->mask & (IN_DELETE_SELF | IN_IGNORED))) continue;
      auto it = watched_.find(ev->wd);
      if (it == watched_.end()) continue;  // IN_IGNORED after IN_DELETE_SELF, or after remove()
      gone.insert(gone.end(), it->second.keys.begin(), it->second.keys.end());
      if (!(ev->mask & IN_IGNORED)) ::inotify_rm_watch(inotify_.get(), ev->wd);
      watched_.erase(it);
    }
  }
  return gone;
}

}  // namespace hostchanfs::mountctl
