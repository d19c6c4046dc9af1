#include "fs/session_resume.hpp"

#include <linux/fuse.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "fs/fuse_abi.hpp"
#include "fs/session_clones.hpp"
#include "fs/session_record.hpp"
#include "sys/errno_text.hpp"
#include "sys/log.hpp"
#include "sys/memfd.hpp"

namespace hostchanfs::fs {

namespace {

constexpr std::size_t kPage = 4096;

// One session per process (as session_io.cpp). Written by setup_session_resume before
// the loop starts, then by the worker threads as each comment says.
struct ResumeState {
  int record_fd = -1;     // the session record; -1: none (nothing kept, no resume)
  std::string channel;    // the mount point, for logs
  bool resuming = false;  // another daemon served this connection before us
  std::uint64_t generation = 0;
  std::string kept_init;  // the kernel's INIT as the first daemon read it
  // The reply to INIT: the first daemon's (kept) or ours; published by reply_known.
  std::string init_reply;
  std::atomic<bool> reply_known{false};
  // Until the resume is done only its leader (the first reader) reads; the others wait.
  std::atomic<bool> open{true};
  std::atomic<bool> leader_taken{false};
  std::mutex open_mutex;  // guards nothing but the wait for `open`
  std::condition_variable opened;
  // The INIT whose reply the writev hook watches for (0: none), and whether to swallow it.
  std::atomic<std::uint64_t> init_unique{0};
  std::atomic<bool> swallow_reply{false};
  // The record's in-flight slots, mapped: one per worker thread (by worker_index()), the
  // unique id it has read and not yet answered.
  std::atomic<std::uint64_t>* in_flight = nullptr;
  // Tests only (HOSTCHANFS_TEST_HOLD_CREATES): a daemon that did not resume never answers
  // a CREATE; the store has made the file, the reply waits until the daemon is killed.
  // This is how a test puts a mutation in flight on every worker thread (creates in
  // different directories: the kernel serializes those in one directory).
  bool hold_creates = false;
  // Tests only (HOSTCHANFS_TEST_DIE_IN_INIT=read|reply): the connection's first daemon
  // kills itself once it has kept the INIT request ("read") or its reply ("reply"),
  // before the kernel has the reply: the two deaths the next daemon must finish INIT after.
  std::string die_in_init;
  // Tests only (HOSTCHANFS_TEST_STALL_AFTER_RELEASE_READ=ms): a worker that has read a
  // RELEASE stalls, runnable, before it runs any more of its own code, as one preempted
  // on its way back from read(2) does.
  unsigned stall_after_release_read_ms = 0;
};
ResumeState g;

thread_local const void* t_touched = nullptr;  // the read buffer touched last, and its size
thread_local std::size_t t_touched_len = 0;
thread_local std::uint32_t t_opcode = 0;  // of the request this thread read last

void die_in_init_if(const char* point) {
  if (g.die_in_init == point) ::raise(SIGKILL);
}

void stall_runnable(std::chrono::milliseconds how_long) {
  auto until = std::chrono::steady_clock::now() + how_long;
  while (std::chrono::steady_clock::now() < until) std::this_thread::yield();
}

[[noreturn]] void hold_forever() {
  for (;;) ::pause();
}

// A write to each page of a read buffer the first time this thread reads into it (libfuse
// keeps one buffer per worker, so this happens once per thread).
void touch_once(void* buf, std::size_t len) {
  if (buf == t_touched && len <= t_touched_len) return;
  auto* bytes = static_cast<volatile char*>(buf);
  for (std::size_t at = 0; at < len; at += kPage) bytes[at] = 0;
  if (len) bytes[len - 1] = 0;
  t_touched = buf;
  t_touched_len = len;
}

// This worker's in-flight slot, or nullptr (no record, a thread that never read, or more
// workers than slots).
std::atomic<std::uint64_t>* in_flight_slot() {
  int worker = worker_index();
  if (!g.in_flight || worker < 0 || static_cast<std::size_t>(worker) >= kInFlightSlots) return nullptr;
  return &g.in_flight[worker];
}

void mark_in_flight(std::uint64_t unique) {
  if (auto* slot = in_flight_slot()) slot->store(unique, std::memory_order_relaxed);
}

void clear_in_flight(std::uint64_t unique) {
  auto* slot = in_flight_slot();
  if (!slot || unique == 0) return;
  std::uint64_t expected = unique;
  slot->compare_exchange_strong(expected, 0, std::memory_order_relaxed);
}

std::string flatten(const iovec* iov, int count) {
  std::string bytes;
  for (int i = 0; i < count; ++i) bytes.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
  return bytes;
}

ssize_t write_all(int fd, const void* bytes, std::size_t len) {
  ssize_t n;
  while ((n = ::write(fd, bytes, len)) < 0 && errno == EINTR) {
  }
  return n;
}

// A kernel that cannot resend: every request the dead daemon had read and not answered
// gets EIO, so that its caller does not wait forever: on the device its worker read it
// from (the same worker number's clone, or `fd`).
void fail_in_flight(int fd) {
  auto log = log::get("fs");
  unsigned failed = 0;
  for (std::size_t i = 0; i < kInFlightSlots; ++i) {
    std::uint64_t unique = g.in_flight[i].exchange(0);
    if (unique == 0) continue;
    fuse_out_header out{sizeof(fuse_out_header), -EIO, unique};
    // ENOENT: the dead daemon had answered it after all.
    if (write_all(clone_of_worker(i, fd), &out, sizeof out) == static_cast<ssize_t>(sizeof out)) ++failed;
  }
  log->error("{}: the dead daemon's unanswered requests failed with EIO: {}", g.channel, failed);
}

// Step 2 and 3: FUSE_NOTIFY_RESEND, then the other readers may go.
void finish_resume(int fd) {
  auto log = log::get("fs");
  fuse_out_header resend{sizeof(fuse_out_header), abi::kNotifyResend, 0};
  bool refused_for_test = std::getenv("HOSTCHANFS_TEST_NO_RESEND") != nullptr;
  ssize_t n = refused_for_test ? (errno = EINVAL, -1) : write_all(fd, &resend, sizeof resend);
  if (n == static_cast<ssize_t>(sizeof resend)) {
    for (std::size_t i = 0; i < kInFlightSlots; ++i) g.in_flight[i].store(0, std::memory_order_relaxed);
    log->info("{}: resumed the connection (daemon {}): INIT replayed, the kernel resends what "
              "the dead daemon had read", g.channel, g.generation);
  } else {
    int err = errno;
    log->error("{}: the kernel refused FUSE_NOTIFY_RESEND ({}; it needs Linux 6.9): requests "
               "the dead daemon had read cannot be resent", g.channel, errno_text(err));
    fail_in_flight(fd);
  }
  {
    std::lock_guard lock(g.open_mutex);
    g.open.store(true, std::memory_order_release);
  }
  g.opened.notify_all();
}

void wait_open() {
  std::unique_lock lock(g.open_mutex);
  g.opened.wait(lock, [] { return g.open.load(std::memory_order_acquire); });
}

// Step 1: the kept INIT as this read's request. Its length, or 0 when none is kept.
std::size_t replay_init(void* buf, std::size_t len) {
  if (g.kept_init.empty() || g.kept_init.size() > len) return 0;
  std::memcpy(buf, g.kept_init.data(), g.kept_init.size());
  g.swallow_reply = g.reply_known.load();
  g.init_unique = static_cast<const fuse_in_header*>(buf)->unique;
  return g.kept_init.size();
}

// A resent INIT (the first daemon read it and did not live to answer): the kernel waits
// for the kept reply under the resent id. True when answered here.
bool answer_resent_init(int fd, std::uint64_t unique) {
  if (!(unique & abi::kUniqueResend) || !g.reply_known.load(std::memory_order_acquire)) return false;
  std::string reply = g.init_reply;
  if (reply.size() < sizeof(fuse_out_header)) return false;
  reinterpret_cast<fuse_out_header*>(reply.data())->unique = unique;
  if (write_all(fd, reply.data(), reply.size()) < 0) {
    log::get("fs")->error("{}: cannot answer the resent INIT: {}", g.channel, errno_text(errno));
  } else {
    log::get("fs")->info("{}: answered the resent INIT with the kept reply", g.channel);
  }
  return true;
}

// A real INIT read from the kernel: keep it (when none is) and watch for its reply.
void note_init(const void* buf, std::size_t n) {
  if (g.kept_init.empty()) {
    if (auto kept = keep_init_message(g.record_fd, false, buf, n); !kept) {
      log::get("fs")->warn("{}: cannot keep the INIT request in the session record: {}", g.channel,
                           errno_text(kept.error()));
    }
    die_in_init_if("read");
  }
  g.swallow_reply = false;
  g.init_unique = static_cast<const fuse_in_header*>(buf)->unique;
}

}  // namespace

bool setup_session_resume(int session_fd, const std::string& channel) {
  if (const char* ms = std::getenv("HOSTCHANFS_TEST_STALL_AFTER_RELEASE_READ"))
    g.stall_after_release_read_ms = static_cast<unsigned>(std::strtoul(ms, nullptr, 10));
  if (session_fd < 0) return true;
  g.channel = channel;
  auto log = log::get("fs");
  auto size = fd_size(session_fd);
  if (size && size.value() < kSessionRecordSize && ::ftruncate(session_fd, kSessionRecordSize) < 0) {
    size = last_errc();
  }
  auto record = size ? read_session_record(session_fd) : Result<SessionRecord>(size.error());
  if (!record) {
    log->error("{}: cannot read the session record in --session-fd {}: {}", g.channel, session_fd, errno_text(record.error()));
    return false;
  }
  void* slots = ::mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_SHARED, session_fd, kInFlightOffset);
  if (slots == MAP_FAILED) {
    log->error("{}: cannot map the session record in --session-fd {}: {}", g.channel, session_fd, errno_text(errno));
    return false;
  }
  static_assert(kInFlightSlots * sizeof(std::uint64_t) == kPage);
  g.in_flight = static_cast<std::atomic<std::uint64_t>*>(slots);
  // Ours before we are ready (the keeper writes it too, once its fork returns).
  (void)record_daemon_pid(session_fd, ::getpid());
  g.record_fd = session_fd;
  g.generation = record.value().header.generation;
  g.resuming = g.generation > 1;
  g.kept_init = record.value().init_in;
  if (!record.value().init_out.empty()) {
    g.init_reply = record.value().init_out;
    g.reply_known = true;
  }
  if (g.resuming) g.open = false;
  g.hold_creates = !g.resuming && std::getenv("HOSTCHANFS_TEST_HOLD_CREATES") != nullptr;
  if (const char* die = std::getenv("HOSTCHANFS_TEST_DIE_IN_INIT"); die && !g.resuming) g.die_in_init = die;
  return true;
}

bool session_resumed() { return g.resuming; }

ssize_t resumable_read(int fd, void* buf, std::size_t len) {
  touch_once(buf, len);
  if (!g.open.load(std::memory_order_acquire)) {
    if (!g.leader_taken.exchange(true)) {
      if (std::size_t n = replay_init(buf, len)) return static_cast<ssize_t>(n);
      finish_resume(fd);  // nothing kept: resend first, the INIT comes again
    } else {
      wait_open();
    }
  }
  for (;;) {
    ssize_t n = ::read(fd, buf, len);
    if (g.stall_after_release_read_ms && n >= static_cast<ssize_t>(sizeof(fuse_in_header)) &&
        static_cast<const fuse_in_header*>(buf)->opcode == FUSE_RELEASE)
      stall_runnable(std::chrono::milliseconds(g.stall_after_release_read_ms));
    if (g.record_fd < 0 || n < static_cast<ssize_t>(sizeof(fuse_in_header))) return n;
    const auto* in = static_cast<const fuse_in_header*>(buf);
    if (in->opcode == FUSE_INIT) {
      if (answer_resent_init(fd, in->unique)) continue;
      note_init(buf, static_cast<std::size_t>(n));
    }
    // FORGET gets no reply: nothing waits for it.
    bool answered = in->opcode != FUSE_FORGET && in->opcode != FUSE_BATCH_FORGET;
    mark_in_flight(answered ? in->unique : 0);
    t_opcode = in->opcode;
    return n;
  }
}

ssize_t resumable_writev(int fd, const iovec* iov, int count) {
  if (g.record_fd < 0 || count < 1 || iov[0].iov_len < sizeof(fuse_out_header)) return ::writev(fd, iov, count);
  std::uint64_t unique = static_cast<const fuse_out_header*>(iov[0].iov_base)->unique;
  std::uint64_t init = g.init_unique.load();
  if (init == 0 || unique != init) {
    if (g.hold_creates && t_opcode == FUSE_CREATE) hold_forever();
    ssize_t rc = ::writev(fd, iov, count);
    clear_in_flight(unique);  // after the write: a death before it leaves the id to fail
    return rc;
  }
  g.init_unique = 0;
  ssize_t rc;
  if (g.swallow_reply) {
    std::size_t total = 0;
    for (int i = 0; i < count; ++i) total += iov[i].iov_len;
    rc = static_cast<ssize_t>(total);
  } else {
    // Kept before it is written: the reply the kernel may get is always the kept one.
    std::string reply = flatten(iov, count);
    if (auto kept = keep_init_message(g.record_fd, true, reply.data(), reply.size()); !kept) {
      log::get("fs")->warn("{}: cannot keep the INIT reply in the session record: {}", g.channel,
                           errno_text(kept.error()));
    }
    die_in_init_if("reply");
    g.init_reply = std::move(reply);
    g.reply_known.store(true, std::memory_order_release);
    rc = ::writev(fd, iov, count);
    if (g.resuming) log::get("fs")->info("{}: the kept INIT had no reply: answered it now", g.channel);
  }
  if (!g.open.load(std::memory_order_acquire)) finish_resume(fd);
  return rc;
}

}  // namespace hostchanfs::fs
