// What every FUSE handler shares: the store it serves and the mount point it is named by
// in logs, reached from a request through fuse_req_userdata().
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <spdlog/logger.h>

#include "shm/store.hpp"

namespace hostchanfs::fs {
class Passthrough;
}

namespace hostchanfs::fs {

struct Filesystem {
  shm::Store& store;
  std::string mountpoint;                 // for log lines only
  std::shared_ptr<spdlog::logger> log;
  bool writeback_cache = false;           // ServeOptions::writeback_cache
  fuse_session* session = nullptr;        // for notifications to the kernel; set once made
  // --charge writer: regular files' data through FUSE passthrough (fs/passthrough.hpp);
  // null in channel mode.
  Passthrough* passthrough = nullptr;
};

inline Filesystem& filesystem_of(fuse_req_t req) {
  return *static_cast<Filesystem*>(fuse_req_userdata(req));
}

// The kernel enforces permissions and ACLs (default_permissions, FUSE_POSIX_ACL); the
// store only needs who asks for ownership of new inodes and for dropping setuid/setgid,
// and the umask, which the kernel leaves to it (FUSE_DONT_MASK; 0 in requests that carry
// none). Root stands for CAP_FSETID.
inline shm::Caller caller_of(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  return shm::Caller{ctx->uid, ctx->gid, ctx->uid == 0, ctx->umask};
}

// The identity of the request being handled on this thread (fs/session_io.hpp), for the
// store's mutating calls: their outcome is recorded, so a resend is answered, not redone.
shm::Request request_of(fuse_req_t req);

// A FUSE offset or length (off_t) as the store's unsigned type; nullopt when negative,
// which the handler answers with EINVAL.
inline std::optional<std::uint64_t> unsigned_arg(off_t v) {
  if (v < 0) return std::nullopt;
  return static_cast<std::uint64_t>(v);
}

}  // namespace hostchanfs::fs
