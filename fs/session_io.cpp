#include "fs/session_io.hpp"

#include "fs/fuse_abi.hpp"
#include "fs/session_clones.hpp"
#include "fs/session_resume.hpp"
#include "fs/tmpfile.hpp"
#include "fs/passthrough.hpp"

#include <linux/fuse.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace hostchanfs::fs {

namespace {

// One session per process: INIT happens once, before any other request.
struct InitState {
  std::atomic<std::uint64_t> unique{0};   // the INIT request's id, 0 until seen
  std::atomic<bool> offered{false};       // the kernel offered KILLPRIV_V2
  std::atomic<bool> replied{false};
  std::atomic<bool> negotiated{false};
};
InitState g_init;

thread_local std::uint64_t t_unique = 0;  // see current_unique()

ssize_t io_read(int fd, void* buf, size_t len, void* /*userdata*/) {
  ssize_t n = resumable_read(fd, buf, len);  // a restarted daemon replays INIT first
  t_unique = n >= static_cast<ssize_t>(sizeof(fuse_in_header)) ? static_cast<const fuse_in_header*>(buf)->unique : 0;
  if (!g_init.replied.load(std::memory_order_relaxed) &&
      n >= static_cast<ssize_t>(sizeof(fuse_in_header) + offsetof(fuse_init_in, flags) +
                                 sizeof(std::uint32_t))) {
    const auto* in = static_cast<const fuse_in_header*>(buf);
    if (in->opcode == FUSE_INIT) {
      const auto* arg = reinterpret_cast<const fuse_init_in*>(in + 1);
      g_init.offered = (arg->flags & FUSE_HANDLE_KILLPRIV_V2) != 0;
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
      if (out->error == 0 && g_init.offered &&
          iov[1].iov_len >= offsetof(fuse_init_out, flags) + sizeof(std::uint32_t)) {
        static_cast<fuse_init_out*>(iov[1].iov_base)->flags |= FUSE_HANDLE_KILLPRIV_V2;
        g_init.negotiated = true;
      }
    }
  }
  return resumable_writev(fd, iov, count);
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

}  // namespace hostchanfs::fs
