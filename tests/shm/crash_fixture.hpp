// What the store's crash and kill tests share: a store in memfds that a child process
// attaches to (and dies in), a logical snapshot of everything a program can observe (the
// namespace by path, attributes but times and inode numbers, contents, xattrs, handles,
// usage), and the child's helpers.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "shm/store.hpp"
#include "sys/memfd.hpp"
#include "tests/shm/store_fixture.hpp"

namespace hostchanfs::shm::testing {

inline UniqueFd dup_fd(int fd) {
  UniqueFd d(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!d) throw std::runtime_error("dup failed");
  return d;
}

// Both memfds of a store, kept by the test across the processes that attach to them.
struct StoreFiles {
  UniqueFd meta, data;

  static UniqueFd copy_of(int from) {
    const std::uint64_t size = must(fd_size(from));
    UniqueFd to = must(make_memfd("crash-copy", size));
    std::vector<char> buf(1 << 16);
    for (off_t at = ::lseek(from, 0, SEEK_DATA); at >= 0 && static_cast<std::uint64_t>(at) < size;
         at = ::lseek(from, at, SEEK_DATA)) {
      off_t end = ::lseek(from, at, SEEK_HOLE);
      for (; at < end;) {
        ssize_t n = ::pread(from, buf.data(), std::min<std::size_t>(buf.size(), static_cast<std::size_t>(end - at)), at);
        if (n <= 0 || ::pwrite(to.get(), buf.data(), static_cast<std::size_t>(n), at) != n)
          throw std::runtime_error("copying a memfd failed");
        at += n;
      }
    }
    return to;
  }

  static StoreFiles make(const StoreOptions& opts, const std::function<void(Store&)>& setup = {}) {
    StoreFiles f{must(make_memfd("crash-meta", 0)), must(make_memfd("crash-data", 0))};
    auto store = must(Store::create_in(opts, dup_fd(f.meta.get()), dup_fd(f.data.get())), "create_in");
    if (setup) setup(*store);
    return f;
  }
  // An identical copy (the same bytes, holes kept), so that every run of a sweep starts
  // from the same store: its hash seed, and with it the shape of its trees, included.
  StoreFiles clone() const {
    StoreFiles f{copy_of(meta.get()), copy_of(data.get())};
    return f;
  }
  // Attach as a restarted daemon would: recovery, the invariant check, the finishing work.
  Result<std::unique_ptr<Store>> attach(std::string* why = nullptr) const {
    return Store::attach(dup_fd(meta.get()), dup_fd(data.get()), why);
  }
};

// One inode as a program sees it.
struct Node {
  std::string path;
  mode_t mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  nlink_t nlink = 0;
  std::uint64_t size = 0, blocks = 0;
  dev_t rdev = 0;
  std::uint32_t opens = 0;
  std::string content;  // file bytes, or a symlink's target
  std::vector<std::string> xattrs;  // "name=value", sorted
  // Whether a read would move atime (relatime: atime not after both mtime and ctime).
  // Times themselves differ from run to run; this does not.
  bool atime_due = false;
  bool operator==(const Node&) const = default;
};

struct Snapshot {
  std::vector<Node> nodes;  // by path; inodes without a name as "#<ino>"
  std::uint64_t pages_used = 0, inodes_used = 0;
  bool operator==(const Snapshot&) const = default;
};

inline void PrintTo(const Snapshot& s, std::ostream* os) {
  *os << "{pages " << s.pages_used << ", inodes " << s.inodes_used;
  for (const Node& n : s.nodes)
    *os << "; " << n.path << " mode " << std::oct << n.mode << std::dec << " nlink " << n.nlink << " size " << n.size
        << " blocks " << n.blocks << " opens " << n.opens << " xattrs " << n.xattrs.size() << " content "
        << n.content.size() << "B";
  *os << "}";
}

inline Node describe(Store& s, Ino ino, std::string path) {
  Node n;
  n.path = std::move(path);
  Attr a = must(s.getattr(ino), "getattr");
  n.mode = a.mode;
  n.uid = a.uid;
  n.gid = a.gid;
  n.nlink = a.nlink;
  n.size = a.size;
  n.blocks = a.blocks;
  n.rdev = a.rdev;
  auto after = [](const timespec& x, const timespec& y) {
    return x.tv_sec > y.tv_sec || (x.tv_sec == y.tv_sec && x.tv_nsec > y.tv_nsec);
  };
  n.atime_due = !(after(a.atime, a.mtime) && after(a.atime, a.ctime));
  n.opens = must(s.open_handles(ino), "open_handles");
  if (S_ISREG(a.mode)) {
    n.content.assign(a.size, '\0');
    n.content.resize(must(s.read(ino, 0, {reinterpret_cast<std::byte*>(n.content.data()), n.content.size()}), "read"));
  } else if (S_ISLNK(a.mode)) {
    auto target = s.readlink(ino);
    n.content = target ? target.value() : "<gone>";
  }
  std::string names(must(s.listxattr(ino, {}), "listxattr"), '\0');
  must(s.listxattr(ino, {names.data(), names.size()}), "listxattr");
  for (std::size_t pos = 0; pos < names.size();) {
    std::size_t end = names.find('\0', pos);
    std::string name = names.substr(pos, end - pos);
    std::string value(must(s.getxattr(ino, name, {}), "getxattr"), '\0');
    must(s.getxattr(ino, name, std::as_writable_bytes(std::span(value.data(), value.size()))), "getxattr");
    n.xattrs.push_back(name + "=" + value);
    pos = end + 1;
  }
  std::sort(n.xattrs.begin(), n.xattrs.end());
  return n;
}

// Everything reachable from the root, plus `unnamed` inodes (open but unlinked ones) that
// still exist.
inline Snapshot snapshot(Store& s, const std::vector<Ino>& unnamed = {}) {
  Snapshot snap;
  std::function<void(Ino, const std::string&)> walk = [&](Ino dir, const std::string& prefix) {
    std::vector<std::pair<std::string, Ino>> entries;
    must(s.readdir(dir, 0, false, [&](const DirEntry& e, const Attr*) {
      if (e.name != "." && e.name != "..") entries.emplace_back(std::string(e.name), e.ino);
      return true;
    }));
    for (auto& [name, ino] : entries) {
      std::string path = prefix + "/" + name;
      snap.nodes.push_back(describe(s, ino, path));
      if (S_ISDIR(snap.nodes.back().mode)) walk(ino, path);
    }
  };
  snap.nodes.push_back(describe(s, kRootIno, "/"));
  walk(kRootIno, "");
  for (Ino ino : unnamed)
    if (s.getattr(ino)) snap.nodes.push_back(describe(s, ino, "#" + std::to_string(ino)));
  std::sort(snap.nodes.begin(), snap.nodes.end(), [](const Node& a, const Node& b) { return a.path < b.path; });
  snap.pages_used = s.pages_used();
  snap.inodes_used = s.inodes_used();
  return snap;
}

}  // namespace hostchanfs::shm::testing
