// A bounded stress run: several processes create, write, rename (within their own
// directory and through a shared one), truncate and delete files in parallel on one
// hostchanfs with a small quota, each keeping a model of what its files must contain.
// Afterwards every surviving file is checked against its model, and statfs usage must
// equal the pages the files actually hold.
#include <dirent.h>
#include <ftw.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <thread>

#include "tests/fs/trace.hpp"
#include "tests/support/fuse_required.hpp"
#include "tests/support/mount_namespace.hpp"
#include "tests/support/scoped_mounts.hpp"

namespace hostchanfs::testing {
namespace {

constexpr int kWorkers = 4;
constexpr auto kRunFor = std::chrono::seconds(3);
constexpr std::size_t kMaxFile = 96 << 10;

class Worker {
 public:
  Worker(std::string root, int id) : root_(std::move(root)), id_(id), rng_(static_cast<unsigned>(id) * 7919u + 1) {
    own_ = "w" + std::to_string(id);
  }

  int run() {
    if (::mkdir(path(own_).c_str(), 0755) < 0) return fail("mkdir " + own_);
    auto until = std::chrono::steady_clock::now() + kRunFor;
    long ops = 0;
    while (std::chrono::steady_clock::now() < until) {
      if (!step()) return 1;
      ++ops;
    }
    std::fprintf(stderr, "worker %d: %ld operations, %zu files, %ld short or failed writes\n", id_, ops,
                 model_.size(), enospc_);
    return verify() ? 0 : 1;
  }

 private:
  std::string path(const std::string& rel) const { return root_ + "/" + rel; }
  int fail(const std::string& what) {
    std::fprintf(stderr, "worker %d: %s: %s\n", id_, what.c_str(), std::strerror(errno));
    return 1;
  }
  std::size_t pick(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_); }
  std::string random_name() {
    // Files live in the worker's own directory or, under the worker's prefix, in shared/.
    std::string leaf = "f" + std::to_string(pick(24));
    return pick(4) == 0 ? "shared/" + own_ + "-" + leaf : own_ + "/" + leaf;
  }
  std::string random_bytes(std::size_t n) {
    std::string s(n, '\0');
    char c = static_cast<char>('A' + pick(26));
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>(c + (i % 7));
    return s;
  }
  std::string existing() {
    auto it = model_.begin();
    std::advance(it, static_cast<long>(pick(model_.size())));
    return it->first;
  }

  // Apply a write's effect to the model: what the call says it wrote, at `off`.
  static void apply(std::string& content, std::size_t off, const std::string& data, std::size_t n) {
    if (content.size() < off + n) content.resize(std::max(content.size(), off + n), '\0');
    content.replace(off, n, data, 0, n);
  }

  bool step() {
    switch (model_.empty() ? 0 : pick(7)) {
      case 0:
      case 5:
      case 6: {  // create or overwrite (more likely than a delete, so files accumulate)
        std::string name = random_name();
        int fd = ::open(path(name).c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) return errno == ENOSPC || fail("create " + name);
        std::string data = random_bytes(pick(kMaxFile));
        ssize_t n = ::write(fd, data.data(), data.size());
        ::close(fd);
        if (n != static_cast<ssize_t>(data.size())) ++enospc_;
        if (n < 0 && errno != ENOSPC) return fail("write " + name);
        std::string& content = model_[name];
        content.clear();
        if (n > 0) apply(content, 0, data, static_cast<std::size_t>(n));
        return true;
      }
      case 1: {  // write somewhere inside or past the end
        std::string name = existing();
        int fd = ::open(path(name).c_str(), O_WRONLY);
        if (fd < 0) return fail("open " + name);
        std::size_t off = pick(kMaxFile);
        std::string data = random_bytes(1 + pick(16 << 10));
        ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(off));
        ::close(fd);
        if (n != static_cast<ssize_t>(data.size())) ++enospc_;
        if (n < 0 && errno != ENOSPC) return fail("pwrite " + name);
        if (n > 0) apply(model_[name], off, data, static_cast<std::size_t>(n));
        return true;
      }
      case 2: {  // rename, possibly replacing, possibly across directories
        std::string from = existing(), to = random_name();
        if (::rename(path(from).c_str(), path(to).c_str()) < 0) return fail("rename " + from + " " + to);
        if (from != to) {
          std::string content = std::move(model_[from]);
          model_.erase(from);
          model_[to] = std::move(content);
        }
        return true;
      }
      case 3: {  // truncate up or down
        std::string name = existing();
        std::size_t size = pick(kMaxFile + 1);
        if (::truncate(path(name).c_str(), static_cast<off_t>(size)) < 0) return fail("truncate " + name);
        model_[name].resize(size, '\0');
        return true;
      }
      default: {  // delete
        std::string name = existing();
        if (::unlink(path(name).c_str()) < 0) return fail("unlink " + name);
        model_.erase(name);
        return true;
      }
    }
  }

  bool verify() {
    bool good = true;
    for (const auto& [name, content] : model_) {
      std::string got = read_file(path(name));
      if (got != content) {
        std::fprintf(stderr, "worker %d: %s holds %zu bytes, expected %zu (first difference at %zu)\n", id_,
                     name.c_str(), got.size(), content.size(),
                     static_cast<std::size_t>(std::mismatch(got.begin(), got.end(), content.begin(), content.end()).first - got.begin()));
        good = false;
      }
    }
    // Nothing else under this worker's names.
    for (const std::string& dir : {own_, std::string("shared")}) {
      DIR* d = ::opendir(path(dir).c_str());
      while (dirent* e = d ? ::readdir(d) : nullptr) {
        std::string n = e->d_name;
        if (n == "." || n == "..") continue;
        std::string rel = dir + "/" + n;
        if (dir == "shared" && n.rfind(own_ + "-", 0) != 0) continue;
        if (!model_.count(rel)) {
          std::fprintf(stderr, "worker %d: unexpected %s\n", id_, rel.c_str());
          good = false;
        }
      }
      if (d) ::closedir(d);
    }
    return good;
  }

  std::string root_;
  int id_;
  std::string own_;
  std::mt19937 rng_;
  std::map<std::string, std::string> model_;
  long enospc_ = 0;
};

// Pages held by every file under the mount, from st_blocks (no hard links are made).
std::uint64_t pages_held = 0, inodes_seen = 0;
int count_pages(const char*, const struct stat* st, int, FTW*) {
  pages_held += static_cast<std::uint64_t>(st->st_blocks) / 8;
  ++inodes_seen;
  return 0;
}

TEST(Stress, ParallelProcessesKeepContentAndAccountingExact) {
  HOSTCHANFS_REQUIRE_FUSE();
  PrivateMountNamespace ns;
  ScopedHostchanfs fs(4 << 20, 4096);  // small: the workers run into ENOSPC
  ASSERT_EQ(::mkdir((fs.path() + "/shared").c_str(), 0777), 0);
  std::vector<ChildProcess> workers;
  for (int i = 0; i < kWorkers; ++i)
    workers.push_back(ChildProcess::fork([&, i] { return Worker(fs.path(), i).run(); }));
  for (int i = 0; i < kWorkers; ++i) EXPECT_EQ(workers[static_cast<std::size_t>(i)].wait(), 0) << "worker " << i;

  // The workers' last release() calls reach the daemon asynchronously after they exit;
  // wait (bounded) until the usage has settled, then compare exactly.
  struct statvfs v {};
  for (int tries = 0; tries < 500; ++tries) {
    pages_held = inodes_seen = 0;
    ASSERT_EQ(::nftw(fs.path().c_str(), count_pages, 16, FTW_PHYS), 0);
    ASSERT_EQ(::statvfs(fs.path().c_str(), &v), 0);
    if (v.f_blocks - v.f_bfree == pages_held && v.f_files - v.f_ffree == inodes_seen) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(v.f_blocks - v.f_bfree, pages_held);
  EXPECT_EQ(v.f_files - v.f_ffree, inodes_seen);
  EXPECT_EQ(fs.stop(), 0);
}

}  // namespace
}  // namespace hostchanfs::testing
