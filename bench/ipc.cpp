// hostchanfs_bench_ipc: two processes talking through a MAP_SHARED file in a mount, what
// a channel is for. Each process opens and maps the file itself, as a host process and a
// container process would.
//
//   hostchanfs_bench_ipc pingpong --dir DIR [--seconds S]     round trips per second
//   hostchanfs_bench_ipc stream --dir DIR [--seconds S] [--ring N] [--chunk N]   MiB/s
//
// The clock starts once the child has opened, mapped and touched the file: what is timed
// is the exchange itself. Attaching is a cost of its own, measured in the child from
// open(2) to close(2) and reported as "attach_seconds", and by part as "attach_split"
// (microseconds of open(2), mmap(2), the touch of every page, close(2)): on a channel the
// first write fault of every page and the write-back that close(2) does dominate it; with
// --charge writer, the OPEN's round trip and the RELEASE that close(2) queues.
//
// Waiting is a short spin, then a futex on a word of the shared page (FUTEX_WAIT without
// FUTEX_PRIVATE_FLAG keys on the file page, so it works across processes): the spin keeps
// the latency of a busy pair low, the futex keeps a pair that shares a core with other
// work from burning its time slice.
//
// Prints one JSON line: {"value": v, "unit": "round trips/s" | "MiB/s", ...}.
#include <fcntl.h>
#include <linux/futex.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "bench/bench_util.hpp"
#include "sys/mapping.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::bench {
namespace {

constexpr std::size_t kHeaderSize = 4096;

// A wake-up word for one shared condition: waiters sleep on `word`, notifiers bump it.
// The sleepers count lets a notifier skip the futex system call when nobody sleeps; the
// seq_cst order of (sleepers++, FUTEX_WAIT's compare) against (word++, sleepers load)
// means a waiter either sees the change or is woken.
struct Signal {
  std::atomic<std::uint32_t> word{0};
  std::atomic<std::uint32_t> sleepers{0};

  template <class Pred>
  void wait_until(Pred ready) {
    for (int i = 0; i < 4000; ++i) {
      if (ready()) return;
      __builtin_ia32_pause();
    }
    for (;;) {
      std::uint32_t seen = word.load();
      if (ready()) return;
      sleepers.fetch_add(1);
      // A timeout bounds the cost of any lost wake-up to a stall instead of a hang.
      timespec timeout{0, 50'000'000};
      ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT, seen, &timeout,
                nullptr, 0);
      sleepers.fetch_sub(1);
    }
  }

  void notify() {
    word.fetch_add(1);
    if (sleepers.load() > 0)
      ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, INT32_MAX,
                nullptr, nullptr, 0);
  }
};

// What attaching cost, by part (nanoseconds): open(2), mmap(2), touching every page, close(2).
enum AttachPart { kOpen, kMap, kTouch, kClose, kAttachParts };
constexpr const char* kAttachPartNames[kAttachParts] = {"open", "mmap", "touch", "close"};
using AttachSplit = std::array<std::uint64_t, kAttachParts>;

// The start of the shared header: the child says it has attached, and how long it took.
struct Attach {
  Signal signal;
  std::atomic<std::uint32_t> ready{0};
  std::atomic<std::uint64_t> nanos{0};
  std::atomic<std::uint64_t> split[kAttachParts] = {};
};

struct PingPongPage {
  Attach attach;
  Signal signal;
  // Odd: the parent's ping is waiting for the child; even: the child answered.
  std::atomic<std::uint64_t> seq{0};
};
constexpr std::uint64_t kStop = UINT64_MAX;

struct RingHeader {
  Attach attach;
  Signal data;    // bumped by the producer when head moves
  Signal space;   // bumped by the consumer when tail moves
  std::atomic<std::uint64_t> head{0};  // bytes produced
  std::atomic<std::uint64_t> tail{0};  // bytes consumed
  // The producer's last head once its time is up; kOpen until then.
  std::atomic<std::uint64_t> end{kOpen};
  static constexpr std::uint64_t kOpen = UINT64_MAX;
};

static_assert(sizeof(PingPongPage) <= kHeaderSize && sizeof(RingHeader) <= kHeaderSize);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

// The shared file: created and sized by the parent, opened and mapped by each process.
class SharedFile {
 public:
  SharedFile(std::string path, std::size_t size) : path_(std::move(path)), size_(size) {
    UniqueFd fd(::open(path_.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
    if (!fd) die("create " + path_, errno);
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) < 0) die("ftruncate " + path_, errno);
  }
  ~SharedFile() { ::unlink(path_.c_str()); }
  SharedFile(const SharedFile&) = delete;
  SharedFile& operator=(const SharedFile&) = delete;

  // Opens and maps the file, then touches every page so that page faults (a FUSE READ
  // per page on first touch) stay out of the timed part.
  // `split`, if given, gets what each part took.
  Mapping map(AttachSplit* split = nullptr) const {
    auto lap = [split, last = Clock::now()](AttachPart part) mutable {
      auto now = Clock::now();
      if (split) (*split)[part] = static_cast<std::uint64_t>(std::chrono::nanoseconds(now - last).count());
      last = now;
    };
    UniqueFd fd(::open(path_.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd) die("open " + path_, errno);
    lap(kOpen);
    auto m = Mapping::map_shared(fd.get(), size_);
    if (!m) die("mmap " + path_, m.error());
    lap(kMap);
    for (std::size_t off = 0; off < size_; off += 4096) {
      volatile std::byte* p = m.value().data() + off;
      *p = *p;
    }
    lap(kTouch);
    fd.reset();
    lap(kClose);
    return std::move(m.value());
  }

 private:
  std::string path_;
  std::size_t size_;
};

struct Attached {
  pid_t pid;
  double seconds;  // open(2) to close(2)
  nlohmann::json split;  // microseconds by part
};

// Runs child(mapping) in a child process that dies with its parent, once the child has
// mapped the file itself; returns when the child is attached, with its pid and what
// attaching took. Header must start with an Attach.
template <class Header, class Fn>
Attached spawn_attached(const SharedFile& file, Header* header, Fn child) {
  pid_t pid = ::fork();
  if (pid < 0) die("fork", errno);
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    auto start = Clock::now();
    AttachSplit split{};
    Mapping theirs = file.map(&split);
    auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start);
    auto* h = reinterpret_cast<Header*>(theirs.data());
    for (int part = 0; part < kAttachParts; ++part) h->attach.split[part].store(split[part]);
    h->attach.nanos.store(static_cast<std::uint64_t>(nanos.count()));
    h->attach.ready.store(1);
    h->attach.signal.notify();
    child(h, theirs.data());
    ::_exit(0);
  }
  header->attach.signal.wait_until([&] { return header->attach.ready.load() != 0; });
  nlohmann::json split = nlohmann::json::object();
  for (int part = 0; part < kAttachParts; ++part)
    split[kAttachPartNames[part]] = static_cast<double>(header->attach.split[part].load()) * 1e-3;
  return {pid, static_cast<double>(header->attach.nanos.load()) * 1e-9, std::move(split)};
}

void reap(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) < 0) die("waitpid", errno);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("ipc child failed", EIO);
}

int pingpong(const std::string& dir, double seconds) {
  SharedFile file(dir + "/pingpong." + std::to_string(::getpid()), kHeaderSize);
  Mapping mine = file.map();
  auto* page = new (mine.data()) PingPongPage;

  auto [child, attach_seconds, attach_split] = spawn_attached(file, page, [](PingPongPage* p, std::byte*) {
    for (std::uint64_t expected = 1;; expected += 2) {
      p->signal.wait_until([&] {
        std::uint64_t s = p->seq.load();
        return s == expected || s == kStop;
      });
      if (p->seq.load() == kStop) return;
      p->seq.store(expected + 1);
      p->signal.notify();
    }
  });

  std::uint64_t trips = 0;
  auto start = Clock::now();
  for (;;) {
    std::uint64_t ping = 2 * trips + 1;
    page->seq.store(ping);
    page->signal.notify();
    page->signal.wait_until([&] { return page->seq.load() == ping + 1; });
    ++trips;
    if (trips % 256 == 0 && seconds_since(start) >= seconds) break;
  }
  double elapsed = seconds_since(start);
  page->seq.store(kStop);
  page->signal.notify();
  reap(child);
  emit(static_cast<double>(trips) / elapsed, "round trips/s",
       {{"round_trips", trips}, {"seconds", elapsed}, {"attach_seconds", attach_seconds},
        {"attach_split", attach_split}});
  return 0;
}

int stream(const std::string& dir, double seconds, std::size_t ring, std::size_t chunk) {
  if (chunk == 0 || ring % chunk != 0 || chunk < sizeof(std::uint64_t))
    die("--ring must be a multiple of --chunk (at least 8 bytes)", EINVAL);
  SharedFile file(dir + "/ring." + std::to_string(::getpid()), kHeaderSize + ring);
  Mapping mine = file.map();
  auto* hdr = new (mine.data()) RingHeader;

  // The consumer copies every chunk out and checks its sequence number, so a torn or
  // stale read would fail the run rather than inflate the figure.
  auto [child, attach_seconds, attach_split] = spawn_attached(file, hdr, [&](RingHeader* h, std::byte* base) {
    std::byte* data = base + kHeaderSize;
    std::vector<std::byte> out(chunk);
    for (std::uint64_t tail = 0;; tail += chunk) {
      h->data.wait_until([&] {
        return h->head.load(std::memory_order_acquire) - tail >= chunk || h->end.load() == tail;
      });
      if (h->head.load(std::memory_order_acquire) - tail < chunk) return;  // end == tail
      std::memcpy(out.data(), data + tail % ring, chunk);
      std::uint64_t seq = 0;
      std::memcpy(&seq, out.data(), sizeof seq);
      if (seq != tail / chunk) ::_exit(3);
      h->tail.store(tail + chunk, std::memory_order_release);
      h->space.notify();
    }
  });

  std::vector<std::byte> in(chunk, std::byte{0x5a});
  std::byte* data = mine.data() + kHeaderSize;
  // The clock is read once a lap of the ring, so that reading it costs nothing measurable.
  const std::uint64_t chunks_per_check = std::max<std::uint64_t>(1, ring / chunk);
  std::uint64_t head = 0;
  auto start = Clock::now();
  for (std::uint64_t n = 1;; ++n) {
    hdr->space.wait_until([&] { return head + chunk - hdr->tail.load(std::memory_order_acquire) <= ring; });
    std::uint64_t seq = head / chunk;
    std::memcpy(in.data(), &seq, sizeof seq);
    std::memcpy(data + head % ring, in.data(), chunk);
    head += chunk;
    hdr->head.store(head, std::memory_order_release);
    hdr->data.notify();
    if (n % chunks_per_check == 0 && seconds_since(start) >= seconds) break;
  }
  hdr->end.store(head);
  hdr->data.notify();
  hdr->space.wait_until([&] { return hdr->tail.load() == head; });
  double elapsed = seconds_since(start);
  reap(child);
  emit(static_cast<double>(head) / (1 << 20) / elapsed, "MiB/s",
       {{"bytes", head}, {"seconds", elapsed}, {"attach_seconds", attach_seconds},
        {"attach_split", attach_split}});
  return 0;
}

int run(int argc, char** argv) {
  CLI::App app{"Shared-mapping IPC through a file in a mount (bench/run.sh runs this)"};
  app.require_subcommand(1);
  std::string dir;
  double seconds = 1.0;
  std::size_t ring = 4u << 20, chunk = 64u << 10;
  int rc = 0;
  auto* pp = app.add_subcommand("pingpong", "round trips per second through one shared page");
  pp->add_option("--dir", dir, "directory in the mount")->required()->check(CLI::ExistingDirectory);
  pp->add_option("--seconds", seconds, "time budget")->check(CLI::PositiveNumber);
  pp->callback([&] { rc = pingpong(dir, seconds); });
  auto* st = app.add_subcommand("stream", "producer/consumer through a ring in a shared mapping");
  st->add_option("--dir", dir, "directory in the mount")->required()->check(CLI::ExistingDirectory);
  st->add_option("--seconds", seconds, "time budget (whole laps of the ring)")->check(CLI::PositiveNumber);
  st->add_option("--ring", ring, "ring size in bytes")->check(CLI::PositiveNumber);
  st->add_option("--chunk", chunk, "bytes per message")->check(CLI::PositiveNumber);
  st->callback([&] { rc = stream(dir, seconds, ring, chunk); });
  CLI11_PARSE(app, argc, argv);
  return rc;
}

}  // namespace
}  // namespace hostchanfs::bench

int main(int argc, char** argv) { return hostchanfs::bench::run(argc, argv); }
