// Replies shared by the handlers: entries and attributes with the mount's cache timeouts,
// and errors with their log line.
#pragma once

#include <system_error>

#include "fs/context.hpp"

namespace hostchanfs::fs {

// The store changes only through this mount, and the kernel invalidates what its own
// operations change, so entries (negative ones too) and attributes can be cached long.
inline constexpr double kEntryTimeout = 86400.0;
inline constexpr double kAttrTimeout = 86400.0;

// With --charge writer, a regular file's size, blocks and times are its backing file's.
shm::Attr seen_attr(const Filesystem& fs, shm::Attr attr);
fuse_entry_param entry_of(const Filesystem& fs, const shm::Attr& attr);

// An open handle of `ino` ends: the store's and, in writer mode, the backing id's share.
void close_handle(Filesystem& fs, shm::Ino ino, const shm::Request& req = {});

// Reply with an entry; if the kernel never receives it (the request was interrupted),
// give back the lookup the store counted for it.
void reply_entry(fuse_req_t req, const shm::Attr& attr);
// Reply to a create with the entry and its handle; if the kernel never receives it, give
// back the handle and the lookup the store counted.
void reply_create(fuse_req_t req, const shm::Attr& attr, const fuse_file_info* fi);
// "No such name", cached like a positive entry.
void reply_negative_entry(fuse_req_t req);
void reply_attr(fuse_req_t req, const shm::Attr& attr);

// The kernel's cached attributes of `ino` are stale (the store changed them behind a
// reply that carries none, e.g. atime on a read): the next stat asks again. Page cache
// kept. Safe inside a handler: the kernel takes no lock a pending request holds.
void invalidate_attrs(Filesystem& fs, fuse_ino_t ino);
// The kernel's cached pages of `ino` holding bytes [offset, offset + len) are dropped
// (attributes too): the next read of them asks the store. Takes the filesystem, not the
// request: it may run after the reply, which frees the request.
void invalidate_data(Filesystem& fs, fuse_ino_t ino, std::uint64_t offset, std::uint64_t len);
// A program read `ino` (opened for reading with `open_flags`, a READ, a READDIR): atime
// as tmpfs keeps it, unless the file was opened O_NOATIME.
void note_read(fuse_req_t req, fuse_ino_t ino, int open_flags);
void reply_ok(fuse_req_t req);

// An errno reply. Errors a program provokes in normal use (ENOENT, EEXIST, ENOSPC, ...)
// are logged at debug level; anything else at warn, naming the mount point, the
// operation and the inode.
void reply_error(fuse_req_t req, std::errc error, const char* op, fuse_ino_t ino);

}  // namespace hostchanfs::fs
