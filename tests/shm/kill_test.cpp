// Random kills under load: a child process attaches to the store and runs random
// mutations (create, write, append, truncate, rename, unlink, mkdir, setxattr) as fast as
// it can, each with a request identity, telling the parent through a pipe what it is
// about to do and, once the call returned, what it answered. The parent kills it with
// SIGKILL at a random moment, attaches (recovery, the invariant check), resends the one
// request that was in flight (its unique with the resend bit, as the kernel does after a
// restart), and asserts that the store holds exactly what a model built from the
// acknowledged answers and that resend holds: every file's contents by checksum, every
// name, every xattr, and the usage. Sixty rounds on one store.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "tests/shm/crash_fixture.hpp"
#include "tests/support/child_process.hpp"

namespace hostchanfs::shm::testing {
namespace {

using hostchanfs::testing::ChildProcess;

constexpr int kNames = 12;
const char* const kDirs[] = {"a", "b"};
const Caller kRoot{0, 0, true};

struct Op {
  enum Kind : std::uint32_t { kCreate, kWrite, kAppend, kTruncate, kRename, kUnlink, kMkdir, kSetxattr, kKinds } kind;
  std::uint32_t dir, name, dir2, name2;
  std::uint32_t seed, len;
  std::uint64_t offset;
};

struct Message {
  enum Type : std::uint32_t { kIntent, kDone } type;
  std::uint32_t pad;
  std::uint64_t seq;
  Op op;
  std::int64_t answer;  // >= 0: a value (bytes written) or 0; < 0: -errno
};
static_assert(sizeof(Message) <= PIPE_BUF);

Op random_op(std::mt19937_64& rng) {
  Op op{};
  op.kind = static_cast<Op::Kind>(rng() % Op::kKinds);
  op.dir = static_cast<std::uint32_t>(rng() % 2);
  op.name = static_cast<std::uint32_t>(rng() % kNames);
  op.dir2 = static_cast<std::uint32_t>(rng() % 2);
  op.name2 = static_cast<std::uint32_t>(rng() % kNames);
  op.seed = static_cast<std::uint32_t>(rng());
  op.len = 1 + static_cast<std::uint32_t>(rng() % (3 * kPageSize));
  op.offset = rng() % (16 * kPageSize);
  return op;
}

std::string name_of(std::uint32_t i) { return "n" + std::to_string(i); }
std::string bytes_for(const Op& op) {
  std::string s(op.len, '\0');
  std::mt19937 r(op.seed);
  for (char& c : s) c = static_cast<char>('a' + r() % 26);
  return s;
}
template <class T>
std::int64_t answer_of(const Result<T>& r) {
  if (!r) return -static_cast<std::int64_t>(r.error());
  if constexpr (std::is_same_v<T, std::size_t>) return static_cast<std::int64_t>(r.value());
  return 0;
}

// The op on the store; what it answered.
std::int64_t run(Store& s, const Op& op, const Request& req, const std::vector<Ino>& dirs) {
  Ino dir = dirs[op.dir];
  const std::string name = name_of(op.name);
  auto target = [&]() -> Result<Ino> {
    HC_TRY(a, s.lookup(dir, name));
    s.forget(a.ino, 1);
    return a.ino;
  };
  switch (op.kind) {
    case Op::kCreate:
      return answer_of(s.mknod(dir, name, S_IFREG | 0644, 0, kRoot, req));
    case Op::kMkdir:
      return answer_of(s.mkdir(dir, "d" + name, 0755, kRoot, req));
    case Op::kWrite:
    case Op::kAppend: {
      auto ino = target();
      if (!ino) return answer_of(ino);
      std::uint64_t at = op.offset;
      if (op.kind == Op::kAppend) at = must(s.getattr(ino.value())).size;
      return answer_of(s.write(ino.value(), at, bytes(bytes_for(op)), kRoot, req));
    }
    case Op::kTruncate: {
      auto ino = target();
      if (!ino) return answer_of(ino);
      AttrChange c;
      c.size = op.offset;
      return answer_of(s.setattr(ino.value(), c, kRoot, req));
    }
    case Op::kRename:
      return answer_of(s.rename(dir, name, dirs[op.dir2], name_of(op.name2), 0, req));
    case Op::kUnlink:
      return answer_of(s.unlink(dir, name, req));
    case Op::kSetxattr: {
      auto ino = target();
      if (!ino) return answer_of(ino);
      return answer_of(s.setxattr(ino.value(), "user.x", bytes(bytes_for(op).substr(0, op.len % 300)), 0, req));
    }
    case Op::kKinds:
      break;
  }
  return 0;
}

// What the acknowledged operations made: every name with its contents and xattr.
struct Model {
  std::map<std::string, std::string> files;  // "a/n3" -> contents
  std::map<std::string, std::string> xattrs;
  std::set<std::string> dirs;                 // "a/dn3"

  // Apply what the store answered (a write's count decides how much landed).
  void apply(const Op& op, std::int64_t answer) {
    if (answer < 0) return;
    const std::string path = std::string(kDirs[op.dir]) + "/" + name_of(op.name);
    switch (op.kind) {
      case Op::kCreate:
        files.emplace(path, "");
        break;
      case Op::kMkdir:
        dirs.insert(std::string(kDirs[op.dir]) + "/d" + name_of(op.name));
        break;
      case Op::kWrite:
      case Op::kAppend: {
        std::string& f = files.at(path);
        std::uint64_t at = op.kind == Op::kAppend ? f.size() : op.offset;
        std::string data = bytes_for(op).substr(0, static_cast<std::size_t>(answer));
        if (f.size() < at + data.size()) f.resize(at + data.size(), '\0');
        f.replace(at, data.size(), data);
        break;
      }
      case Op::kTruncate:
        files.at(path).resize(op.offset, '\0');
        break;
      case Op::kRename: {
        const std::string to = std::string(kDirs[op.dir2]) + "/" + name_of(op.name2);
        if (to == path) break;
        files[to] = files.at(path);
        files.erase(path);
        auto x = xattrs.find(path);
        xattrs.erase(to);
        if (x != xattrs.end()) {
          xattrs[to] = x->second;
          xattrs.erase(path);
        }
        break;
      }
      case Op::kUnlink:
        files.erase(path);
        xattrs.erase(path);
        break;
      case Op::kSetxattr:
        xattrs[path] = bytes_for(op).substr(0, op.len % 300);
        break;
      case Op::kKinds:
        break;
    }
  }
};

[[noreturn]] void child_loop(const StoreFiles& f, int out, std::uint64_t seed) {
  auto s = f.attach();
  if (!s) ::_exit(3);
  Store& store = *s.value();
  std::vector<Ino> dirs;
  for (const char* d : kDirs) dirs.push_back(must(store.lookup(kRootIno, d)).ino);
  std::mt19937_64 rng(seed);
  for (std::uint64_t seq = 0;; ++seq) {
    Message m{Message::kIntent, 0, seq, random_op(rng), 0};
    if (::write(out, &m, sizeof m) != sizeof m) ::_exit(4);
    m.answer = run(store, m.op, Request{(seed << 32 | seq) * 2 + 2}, dirs);
    m.type = Message::kDone;
    if (::write(out, &m, sizeof m) != sizeof m) ::_exit(4);
  }
}

void expect_matches(Store& s, const Model& model, int round) {
  std::map<std::string, std::string> files, xattrs;
  std::set<std::string> dirs;
  for (const char* d : kDirs) {
    Ino dir = must(s.lookup(kRootIno, d)).ino;
    s.forget(dir, 1);
    must(s.readdir(dir, 0, false, [&](const DirEntry& e, const Attr*) {
      if (e.name == "." || e.name == "..") return true;
      std::string path = std::string(d) + "/" + std::string(e.name);
      if (S_ISDIR(e.mode)) {
        dirs.insert(path);
        return true;
      }
      Node n = describe(s, e.ino, path);
      files[path] = n.content;
      for (const std::string& x : n.xattrs) xattrs[path] = x.substr(x.find('=') + 1);
      return true;
    }));
  }
  auto checksums = [](const std::map<std::string, std::string>& m) {
    std::map<std::string, std::size_t> out;
    for (auto& [k, v] : m) out[k] = std::hash<std::string>{}(v) ^ v.size();
    return out;
  };
  EXPECT_EQ(checksums(files), checksums(model.files)) << "round " << round;
  EXPECT_EQ(xattrs, model.xattrs) << "round " << round;
  EXPECT_EQ(dirs, model.dirs) << "round " << round;
}

TEST(StoreKill, RandomKillsUnderLoadLoseNothingAcknowledged) {
  StoreFiles f = StoreFiles::make(StoreOptions{.size_bytes = 4 << 20, .chunk_pages = 8}, [](Store& s) {
    for (const char* d : kDirs) s.forget(must(s.mkdir(kRootIno, d, 0755, kRoot)).ino, 1);
  });
  Model model;
  std::mt19937_64 rng(4242);
  std::uint64_t acknowledged = 0, resends = 0;
  for (int round = 0; round < 60; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    UniqueFd in(fds[0]), out(fds[1]);
    ::fcntl(out.get(), F_SETPIPE_SZ, 4 << 20);  // a child blocked on a full pipe would die only between ops
    const std::uint64_t seed = rng() >> 40;
    auto child = ChildProcess::fork([&]() -> int {
      in.reset();
      child_loop(f, out.get(), seed);
    });
    out.reset();
    std::uint64_t wait_for = rng() % 2000, seen = 0;
    std::optional<Message> pending;
    auto take = [&](const Message& m) {
      if (m.type == Message::kIntent) {
        pending = m;
        return;
      }
      model.apply(m.op, m.answer);
      ++acknowledged;
      pending.reset();
    };
    Message m{};
    while (seen < wait_for && ::read(in.get(), &m, sizeof m) == sizeof m) {
      take(m);
      if (m.type == Message::kDone) ++seen;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
    child.signal(SIGKILL);
    ASSERT_EQ(child.wait(), 128 + SIGKILL) << "round " << round << ": the child ended on its own";
    while (::read(in.get(), &m, sizeof m) == sizeof m) take(m);

    std::string why;
    auto s = f.attach(&why);
    ASSERT_TRUE(s) << "round " << round << ": the store was refused: " << why;
    auto problem = s.value()->verify();
    ASSERT_FALSE(problem) << "round " << round << ": " << *problem;
    if (pending) {
      // The kernel resends what the dead daemon had not answered.
      std::vector<Ino> dirs;
      for (const char* d : kDirs) {
        dirs.push_back(must(s.value()->lookup(kRootIno, d)).ino);
        s.value()->forget(dirs.back(), 1);
      }
      const Request req{((seed << 32 | pending->seq) * 2 + 2) | Request::kResend};
      model.apply(pending->op, run(*s.value(), pending->op, req, dirs));
      ++resends;
    }
    expect_matches(*s.value(), model, round);
    if (HasFailure()) return;
  }
  std::printf("%llu operations acknowledged, %llu resent after a kill\n", static_cast<unsigned long long>(acknowledged),
              static_cast<unsigned long long>(resends));
  EXPECT_GT(acknowledged, 1000u);
  EXPECT_GT(resends, 10u);  // many kills land inside an operation (the rest between two)
}

}  // namespace
}  // namespace hostchanfs::shm::testing
