#include "fs/session_io.hpp"

#include "fs/fuse_abi.hpp"
#include "fs/session_clones.hpp"
#include "fs/session_resume.hpp"
#include "fs/tmpfile.hpp"
#include "fs/passthrough.hpp"
#include "sys/unique_fd.hpp"

#include <linux/fuse.h>
#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <thread>

namespace hostchanfs::fs {

namespace {

// One session per process: INIT happens once, before any other request.
struct InitState {
  std::atomic<std::uint64_t> unique{0};   // the INIT request's id, 0 until seen
  std::atomic<bool> offered{false};       // the kernel offered KILLPRIV_V2
  std::atomic<bool> ext_offered{false};   // ... and SETXATTR_EXT
  std::atomic<bool> replied{false};
  std::atomic<bool> negotiated{false};
  std::atomic<bool> setxattr_ext{false};  // SETXATTR_EXT accepted: SETXATTR comes extended
};
InitState g_init;

thread_local std::uint64_t t_unique = 0;  // see current_unique()

// RELEASEs from the moment a worker has read one to its reply: see wait_for_releases().
std::atomic<int> g_releases{0};
thread_local bool t_release = false;  // this thread's request is a RELEASE

// What each worker does, for wait_for_releases(): a RELEASE that a worker has read but not
// yet counted (preempted on its way back from read(2), the kernel's usual point to
// preempt; or its vCPU taken by the host) is not in g_releases. Its worker is then in
// kReading and not asleep, which the statfs that waits can tell from /proc. (The worker
// stores kReading before its read takes the kernel's queue lock, which the statfs's read
// takes after it: the statfs sees it.) Workers past the first kWorkerSlots (libfuse's
// threads come and go) are not watched.
enum Phase : int { kOther = 0, kReading = 1 };
struct alignas(64) WorkerState {
  std::atomic<pid_t> tid{0};
  std::atomic<int> phase{kOther};
};
constexpr std::size_t kWorkerSlots = 64;
std::array<WorkerState, kWorkerSlots> g_workers;

WorkerState* worker_state() noexcept {
  int worker = worker_index();
  if (worker < 0 || static_cast<std::size_t>(worker) >= kWorkerSlots) return nullptr;
  WorkerState& w = g_workers[static_cast<std::size_t>(worker)];
  if (w.tid.load(std::memory_order_relaxed) == 0) w.tid.store(::gettid(), std::memory_order_relaxed);
  return &w;
}

// Whether thread `tid` of this process sleeps (a worker in kReading asleep is blocked in
// read(2) with nothing read; running, runnable or anything else, it may hold a request it
// has not counted yet). Unknown (no /proc): asleep, so that nothing waits forever.
bool asleep(pid_t tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/stat", static_cast<int>(tid));
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd) return true;
  char text[512];
  ssize_t n = ::read(fd.get(), text, sizeof text - 1);
  if (n <= 0) return true;
  text[n] = '\0';
  const char* close_paren = std::strrchr(text, ')');  // the name may hold anything
  return !close_paren || close_paren[1] != ' ' || close_paren[2] == 'S';
}
thread_local std::uint32_t t_setxattr_flags = 0;  // see current_setxattr_flags()

// With FUSE_SETXATTR_EXT the kernel sends struct fuse_setxattr_in 16 bytes long; libfuse
// 3.14 (Debian's, whose header has the 8-byte form) reads the name right after 8. The
// request is made the old form here: its setxattr_flags kept for the handler, the name
// and value moved down over them.
ssize_t to_compat_setxattr(void* buf, ssize_t n) {
  constexpr auto kHeader = static_cast<ssize_t>(sizeof(fuse_in_header));
  constexpr ssize_t kExt = 16, kCompat = FUSE_COMPAT_SETXATTR_IN_SIZE;
  auto* in = static_cast<fuse_in_header*>(buf);
  if (n < kHeader + kExt) return n;
  auto* arg = reinterpret_cast<std::byte*>(in + 1);
  std::memcpy(&t_setxattr_flags, arg + kCompat, sizeof t_setxattr_flags);
  std::memmove(arg + kCompat, arg + kExt, static_cast<std::size_t>(n - kHeader - kExt));
  in->len -= kExt - kCompat;
  return n - (kExt - kCompat);
}

ssize_t io_read(int fd, void* buf, size_t len, void* /*userdata*/) {
  WorkerState* state = worker_state();
  if (state) state->phase.store(kReading, std::memory_order_release);
  ssize_t n = resumable_read(fd, buf, len);  // a restarted daemon replays INIT first
  t_unique = n >= static_cast<ssize_t>(sizeof(fuse_in_header)) ? static_cast<const fuse_in_header*>(buf)->unique : 0;
  t_setxattr_flags = 0;
  if (t_unique != 0 && static_cast<const fuse_in_header*>(buf)->opcode == FUSE_RELEASE) {
    g_releases.fetch_add(1);
    t_release = true;
  }
  if (state) state->phase.store(kOther, std::memory_order_release);  // counted, if a RELEASE
  if (t_unique != 0 && g_init.setxattr_ext.load(std::memory_order_relaxed) &&
      static_cast<const fuse_in_header*>(buf)->opcode == FUSE_SETXATTR)
    n = to_compat_setxattr(buf, n);
  if (!g_init.replied.load(std::memory_order_relaxed) &&
      n >= static_cast<ssize_t>(sizeof(fuse_in_header) + offsetof(fuse_init_in, flags) +
                                 sizeof(std::uint32_t))) {
    const auto* in = static_cast<const fuse_in_header*>(buf);
    if (in->opcode == FUSE_INIT) {
      const auto* arg = reinterpret_cast<const fuse_init_in*>(in + 1);
      g_init.offered = (arg->flags & FUSE_HANDLE_KILLPRIV_V2) != 0;
      g_init.ext_offered = (arg->flags & FUSE_SETXATTR_EXT) != 0;
      g_init.unique = in->unique;
      passthrough_note_init(*arg, static_cast<std::size_t>(n) - sizeof(fuse_in_header));
    }
  }
  return n;
}

// Requests libfuse 3.14 cannot dispatch are answered here (fs/tmpfile.hpp), and the next
// one is read in their place.
// `fd` is the session's descriptor; the worker reads (and answers) on its own clone.
ssize_t io_read_answering(int session_fd, void* buf, size_t len, void* userdata) {
  int fd = worker_read_fd(session_fd);
  for (;;) {
    ssize_t n = io_read(fd, buf, len, userdata);
    if (n <= 0 || !answer_tmpfile(fd, buf, static_cast<std::size_t>(n), *static_cast<Filesystem*>(userdata)))
      return n;
  }
}

ssize_t io_writev(int session_fd, iovec* iov, int count, void* /*userdata*/) {
  int fd = worker_write_fd(session_fd);
  std::uint64_t init_unique = g_init.unique.load(std::memory_order_relaxed);
  passthrough_patch_reply(t_unique, g_init.replied.load(std::memory_order_relaxed) ? 0 : init_unique, iov, count);
  if (init_unique && !g_init.replied.load(std::memory_order_relaxed) && count >= 2 &&
      iov[0].iov_len >= sizeof(fuse_out_header)) {
    auto* out = static_cast<fuse_out_header*>(iov[0].iov_base);
    if (out->unique == init_unique) {
      g_init.replied = true;
      if (out->error == 0 && iov[1].iov_len >= offsetof(fuse_init_out, flags) + sizeof(std::uint32_t)) {
        auto& flags = static_cast<fuse_init_out*>(iov[1].iov_base)->flags;
        if (g_init.offered) {
          flags |= FUSE_HANDLE_KILLPRIV_V2;
          g_init.negotiated = true;
        }
        // Only for POSIX ACLs: the flag that drops setgid comes in the extended form.
        if (g_init.ext_offered && (flags & FUSE_POSIX_ACL)) {
          flags |= FUSE_SETXATTR_EXT;
          g_init.setxattr_ext = true;
        }
      }
    }
  }
  ssize_t rc = resumable_writev(fd, iov, count);
  if (t_release) {
    t_release = false;
    g_releases.fetch_sub(1);
  }
  return rc;
}

constexpr fuse_custom_io kIo = {
    .writev = io_writev,
    .read = io_read_answering,
    .splice_receive = nullptr,  // no splice: requests arrive in memory, replies go by writev
    .splice_send = nullptr,
};

}  // namespace

Result<void> use_session_io(fuse_session* se, UniqueFd fuse_fd) {
  int rc = fuse_session_custom_io(se, &kIo, fuse_fd.get());
  if (rc < 0) return static_cast<std::errc>(-rc);
  fuse_fd.release();
  return success();
}

bool killpriv_v2_negotiated() { return g_init.negotiated.load(); }

std::uint64_t current_unique() noexcept { return t_unique; }

void wait_for_releases() noexcept {
  const WorkerState* own = worker_state();
  for (const WorkerState& w : g_workers) {
    if (&w == own) continue;
    while (w.phase.load(std::memory_order_acquire) == kReading) {
      pid_t tid = w.tid.load(std::memory_order_relaxed);
      if (tid == 0 || asleep(tid)) break;
      std::this_thread::yield();
    }
  }
  while (g_releases.load() > 0) std::this_thread::yield();
}

std::uint32_t current_setxattr_flags() noexcept { return t_setxattr_flags; }

}  // namespace hostchanfs::fs
