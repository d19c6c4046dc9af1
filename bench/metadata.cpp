// hostchanfs_bench_metadata: metadata operations per second in one directory of a mount.
//
//   hostchanfs_bench_metadata OP --dir DIR [--seconds S] [--max N] [--entries N]
//
// OP is one of create, stat, unlink, mkdir, rmdir, create-write4k-close, readdir, rename,
// populate, create-in. Each run works in a fresh subdirectory of DIR and removes it
// afterwards (untimed), except `populate` (fills DIR/big with --entries empty files once)
// and `create-in` (times creates inside DIR/big, the scale check against `create`).
//
// Operations that need something to act on (unlink, rmdir, rename) first create as many
// objects as fit in --seconds (untimed, capped by --max and by the mount's free inodes),
// then time the operation over all of them: both file systems are timed on the same
// kind of work, each on as much as it manages in the budget.
//
// Prints one JSON line: {"value": ops per second, "unit": "ops/s", "ops": n, "seconds": t}.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "bench/bench_util.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::bench {
namespace {

struct Options {
  std::string dir;
  double seconds = 1.0;
  std::uint64_t max = 50000;
  std::uint64_t entries = 100000;
};

struct Measured {
  std::uint64_t ops = 0;
  double seconds = 0;
};

std::string name_of(const std::string& dir, std::uint64_t i) {
  return dir + "/f" + std::to_string(i);
}

// How many new objects the mount can take without running into its own limits: half of
// the free inodes (and, for files with data, half of the free space) so that a run never
// measures ENOSPC instead of the operation.
std::uint64_t capacity(const std::string& dir, std::uint64_t bytes_each) {
  struct statvfs sv {};
  if (::statvfs(dir.c_str(), &sv) < 0) die("statvfs " + dir, errno);
  std::uint64_t cap = sv.f_ffree / 2;
  if (bytes_each > 0) cap = std::min<std::uint64_t>(cap, sv.f_bavail * sv.f_frsize / 2 / bytes_each);
  return cap;
}

void create_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644));
  if (!fd) die("create " + path, errno);
}

void make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) < 0) die("mkdir " + path, errno);
}

// Runs op(i) for i = 0, 1, ... until the budget is spent or `limit` is reached.
Measured for_budget(double seconds, std::uint64_t limit, const std::function<void(std::uint64_t)>& op) {
  Measured m;
  auto start = Clock::now();
  // The clock is read every 64 operations: cheap next to any system call, and fine-grained
  // enough for budgets of a tenth of a second.
  while (m.ops < limit) {
    op(m.ops++);
    if (m.ops % 64 == 0 && seconds_since(start) >= seconds) break;
  }
  m.seconds = seconds_since(start);
  return m;
}

// Runs op(i) for i in [0, n) and times all of it.
Measured for_count(std::uint64_t n, const std::function<void(std::uint64_t)>& op) {
  auto start = Clock::now();
  for (std::uint64_t i = 0; i < n; ++i) op(i);
  return {n, seconds_since(start)};
}

// A scratch directory that is removed, with whatever is left in it, when the run ends.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& parent)
      : path_(parent + "/meta." + std::to_string(::getpid())) {
    make_dir(path_);
  }
  ~ScratchDir() { remove_tree(path_); }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

  // Untimed cleanup; std::filesystem does the walk, errors leave litter only in a mount
  // that the harness discards anyway.
  static void remove_tree(const std::string& path) {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }

 private:
  std::string path_;
};

Measured op_create(const Options& o) {
  ScratchDir s(o.dir);
  std::uint64_t limit = std::min(o.max, capacity(s.path(), 0));
  return for_budget(o.seconds, limit, [&](std::uint64_t i) { create_file(name_of(s.path(), i)); });
}

Measured op_create_write4k_close(const Options& o) {
  ScratchDir s(o.dir);
  std::array<char, 4096> block{};
  block.fill('x');
  std::uint64_t limit = std::min(o.max, capacity(s.path(), block.size()));
  return for_budget(o.seconds, limit, [&](std::uint64_t i) {
    std::string p = name_of(s.path(), i);
    UniqueFd fd(::open(p.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644));
    if (!fd) die("create " + p, errno);
    if (::write(fd.get(), block.data(), block.size()) != static_cast<ssize_t>(block.size()))
      die("write " + p, errno);
    if (::close(fd.release()) < 0) die("close " + p, errno);
  });
}

Measured op_mkdir(const Options& o) {
  ScratchDir s(o.dir);
  std::uint64_t limit = std::min(o.max, capacity(s.path(), 0));
  return for_budget(o.seconds, limit, [&](std::uint64_t i) { make_dir(name_of(s.path(), i)); });
}

// Fills the scratch directory for the budget (untimed), then times `op` over every entry.
Measured prepared(const Options& o, const std::function<void(const std::string&)>& make,
                  const std::function<void(const std::string&, std::uint64_t)>& op) {
  ScratchDir s(o.dir);
  std::uint64_t limit = std::min(o.max, capacity(s.path(), 0));
  Measured made = for_budget(o.seconds, limit, [&](std::uint64_t i) { make(name_of(s.path(), i)); });
  return for_count(made.ops, [&](std::uint64_t i) { op(s.path(), i); });
}

Measured op_unlink(const Options& o) {
  return prepared(o, create_file, [](const std::string& d, std::uint64_t i) {
    if (::unlink(name_of(d, i).c_str()) < 0) die("unlink", errno);
  });
}

Measured op_rmdir(const Options& o) {
  return prepared(o, make_dir, [](const std::string& d, std::uint64_t i) {
    if (::rmdir(name_of(d, i).c_str()) < 0) die("rmdir", errno);
  });
}

Measured op_rename(const Options& o) {
  return prepared(o, create_file, [](const std::string& d, std::uint64_t i) {
    std::string to = d + "/r" + std::to_string(i);
    if (::rename(name_of(d, i).c_str(), to.c_str()) < 0) die("rename", errno);
  });
}

// stat of cached files: 1000 files, one untimed pass so that every name and attribute is
// cached, then passes over them for the budget.
Measured op_stat(const Options& o) {
  ScratchDir s(o.dir);
  std::uint64_t n = std::min<std::uint64_t>({1000, o.max, capacity(s.path(), 0)});
  std::vector<std::string> names;
  for (std::uint64_t i = 0; i < n; ++i) {
    names.push_back(name_of(s.path(), i));
    create_file(names.back());
  }
  auto stat_one = [&](std::uint64_t i) {
    struct stat st {};
    if (::stat(names[i % n].c_str(), &st) < 0) die("stat", errno);
  };
  for_count(n, stat_one);
  return for_budget(o.seconds, UINT64_MAX, stat_one);
}

std::uint64_t list_dir(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (!d) die("opendir " + path, errno);
  std::uint64_t n = 0;
  while (::readdir(d)) ++n;
  ::closedir(d);
  return n;
}

// readdir of a directory of --entries files (10 000 by default for this op): entries per
// second over whole listings (opendir, readdir to the end, closedir), after one untimed
// listing.
Measured op_readdir(const Options& o) {
  ScratchDir s(o.dir);
  std::uint64_t n = std::min(o.entries, capacity(s.path(), 0));
  for (std::uint64_t i = 0; i < n; ++i) create_file(name_of(s.path(), i));
  list_dir(s.path());
  Measured m;
  auto start = Clock::now();
  do {
    m.ops += list_dir(s.path());
  } while (seconds_since(start) < o.seconds);
  m.seconds = seconds_since(start);
  return m;
}

std::string big_dir(const Options& o) { return o.dir + "/big"; }

// Fills DIR/big with --entries empty files (mknod: no open/release round trips), once,
// within --seconds: on a swamped machine a smaller directory beats a run that never ends
// (the result's "ops" says how many entries it got).
Measured op_populate(const Options& o) {
  std::string big = big_dir(o);
  make_dir(big);
  std::uint64_t n = std::min(o.entries, capacity(big, 0));
  return for_budget(o.seconds, n, [&](std::uint64_t i) {
    if (::mknod(name_of(big, i).c_str(), S_IFREG | 0644, 0) < 0) die("mknod", errno);
  });
}

// Creates in DIR/big (filled by populate), then removes what it created (untimed), so the
// next repetition finds the same directory.
Measured op_create_in(const Options& o) {
  std::string big = big_dir(o);
  std::string prefix = big + "/n" + std::to_string(::getpid()) + "_";
  std::uint64_t limit = std::min(o.max, capacity(big, 0));
  Measured m = for_budget(o.seconds, limit, [&](std::uint64_t i) { create_file(prefix + std::to_string(i)); });
  for (std::uint64_t i = 0; i < m.ops; ++i) ::unlink((prefix + std::to_string(i)).c_str());
  return m;
}

int run(int argc, char** argv) {
  const std::map<std::string, std::function<Measured(const Options&)>> ops = {
      {"create", op_create},       {"stat", op_stat},     {"unlink", op_unlink},
      {"mkdir", op_mkdir},         {"rmdir", op_rmdir},   {"create-write4k-close", op_create_write4k_close},
      {"readdir", op_readdir},     {"rename", op_rename}, {"populate", op_populate},
      {"create-in", op_create_in},
  };
  CLI::App app{"Metadata operations per second in a directory (bench/run.sh runs this)"};
  Options o;
  std::string op;
  std::vector<std::string> names;
  for (const auto& [name, fn] : ops) names.push_back(name);
  app.add_option("op", op, "operation")->required()->check(CLI::IsMember(names));
  app.add_option("--dir", o.dir, "directory to work in (a mount)")->required()->check(CLI::ExistingDirectory);
  app.add_option("--seconds", o.seconds, "time budget of the timed part")->check(CLI::PositiveNumber);
  app.add_option("--max", o.max, "at most this many objects per run")->check(CLI::PositiveNumber);
  app.add_option("--entries", o.entries, "directory size for readdir and populate")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  Measured m = ops.at(op)(o);
  if (m.ops == 0 || m.seconds <= 0) die(op + ": nothing measured", EINVAL);
  emit(static_cast<double>(m.ops) / m.seconds, "ops/s", {{"ops", m.ops}, {"seconds", m.seconds}});
  return 0;
}

}  // namespace
}  // namespace hostchanfs::bench

int main(int argc, char** argv) { return hostchanfs::bench::run(argc, argv); }
