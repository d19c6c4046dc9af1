// A new daemon on an old connection. When a channel's daemon dies, its keeper starts
// another one on the same /dev/fuse descriptor (which the keeper holds: the mount and
// every request the kernel has queued stay). The kernel will not send INIT again, and
// libfuse 3.14 answers everything with EIO until it has seen one, so the new daemon:
//
//  1. feeds its session the INIT request the first daemon read (kept in the session
//     record, fs/session_record.hpp) as its first read, and swallows the reply (the
//     kernel had its answer long ago);
//  2. writes FUSE_NOTIFY_RESEND ({len 16, error 7, unique 0}): the kernel queues again
//     every request the dead daemon had read and not answered, with bit 63 set in its
//     unique id (the store answers a resent mutation from its dedupe record, exactly
//     once);
//  3. only then lets the other worker threads read: libfuse's multi-threaded loop starts
//     a second worker before INIT is processed, which would answer a real request with
//     EIO while the session has not seen INIT.
//
// The first daemon died after reading INIT and before answering it: the kept request
// has no kept reply; the replayed INIT's reply then goes to the kernel (the INIT is still
// waiting there under its original id). The first daemon died between keeping the reply
// and writing it: the kernel resends INIT after step 2, and that resent INIT is answered
// with the kept reply. The first daemon died before keeping INIT at all: step 2 comes
// first and the resent INIT is served as a first one.
//
// A kernel without FUSE_NOTIFY_RESEND (before 6.9) refuses it with EINVAL: the daemon
// logs it and answers EIO to each request the dead daemon had read and not answered (their
// ids are in the record's in-flight slots), so that no caller hangs.
//
// Each read buffer is touched once before the first read into it: the kernel copies a
// request into the daemon's buffer, and a fault there while the daemon is being killed
// could end that request with EIO instead of leaving it to be resent.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace hostchanfs::fs {

// Once, before the session loop: the session record's memfd (-1: none, so no resume and
// no INIT is kept). Reads the record: a generation above 1 means this daemon follows
// another one on the connection. The descriptor stays open for the process's life.
// false (logged, naming `channel`, the mount point) when the record cannot be read or mapped.
bool setup_session_resume(int session_fd, const std::string& channel);

// Whether this daemon resumed a connection (for logs and tests).
bool session_resumed();

// The session's read and write of /dev/fuse, as fs/session_io.cpp's custom I/O calls them.
ssize_t resumable_read(int fd, void* buf, std::size_t len);
ssize_t resumable_writev(int fd, const iovec* iov, int count);

}  // namespace hostchanfs::fs
