// One /dev/fuse descriptor per worker thread, none of them the daemon's to lose.
//
// The kernel keeps a processing queue per /dev/fuse device (the descriptor that read a
// request is the one its reply must be written to). With every worker on one descriptor,
// the workers contend for that one queue's lock on every request and reply; a device per
// worker (FUSE_DEV_IOC_CLONE) has none of that. libfuse 3.14 makes such clones itself
// (clone_fd), but they are the daemon's own: when it dies, closing a clone ends every
// request read through it with ECONNABORTED.
//
// So the clones belong to whoever holds the connection. The controller clones a channel's
// /dev/fuse once (mountctl/channel.cpp), holds the clones, and places them in the
// channel's keeper (mountctl/keeper.hpp), which hands the same clones to each daemon it
// starts (serve --fuse-clone-fds); a replacement controller takes them back with the
// rest. A dead daemon's (or keeper's) unanswered requests stay on devices still open, and
// FUSE_NOTIFY_RESEND (fs/session_resume.hpp) queues them again from every device of the
// connection. A daemon that is not resumable (no
// session record: nobody would resend) clones its own.
//
// libfuse's loop runs with clone_fd off; the session's I/O (fs/session_io.cpp) reads and
// answers on the calling worker's clone in place of the descriptor libfuse passes. A
// worker handles each request on the thread that read it and answers before its next
// read (see current_unique() in fs/session_io.hpp), so the reply finds its request.
// Notifications may go to any device: a thread that has never read (no worker) writes to
// the descriptor it is given.
#pragma once

#include <cstddef>
#include <vector>

#include "sys/result.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::fs {

// How many worker threads a daemon runs (libfuse's max_threads), and so how many clones
// a keeper makes.
unsigned session_workers();

// `count` clones of the connection `fuse_fd` belongs to, close-on-exec (a keeper gets
// the controller's at fixed numbers, Exec::place_fd).
Result<std::vector<UniqueFd>> clone_fuse_fd(int fuse_fd, unsigned count);

// Once, before the session loop: the clones the workers use, in order (the caller keeps
// them open while the session runs). Empty: every worker uses the session's descriptor.
void use_worker_clones(std::vector<int> fds);

// The calling thread's worker number: assigned at its first read, in the order threads
// first read (0, 1, ...); -1 on a thread that has never read.
int worker_index() noexcept;

// The descriptor the calling worker reads from: its clone (the thread becomes a worker
// now if it was not one), or `fd` when there is no clone for it.
int worker_read_fd(int fd) noexcept;

// The descriptor to write to: the calling worker's clone, or `fd` on other threads.
int worker_write_fd(int fd) noexcept;

// The clone of worker `index`, or `fd` when it has none (a dead daemon's worker `index`
// read through the same clone: its unanswered requests are answered there).
int clone_of_worker(std::size_t index, int fd) noexcept;

}  // namespace hostchanfs::fs
