// The session record: what one FUSE connection keeps across the daemons that serve it,
// in a small memfd of its own ("hostchanfs-session") that the channel's keeper and the
// controller hold beside /dev/fuse and the store's memfds.
//
//   offset 0      Header: the generation (how many daemons the keeper has started on this
//                 connection), the current daemon's pid (both written by the keeper), and
//                 the lengths of the two INIT messages below (written by the daemon)
//   offset 4096   the kernel's INIT request as the first daemon read it (header + body)
//   offset 8192   the INIT reply the first daemon wrote (header + body)
//   offset 12288  one slot per worker thread: the unique id of the request it has read
//                 and not yet answered (0: none), for a kernel that cannot resend
//   offset 16384  --charge writer: the connection's passthrough backing ids by inode
//                 (fs/backing_ids.hpp), to the end
//
// A length is written after the bytes it covers, so a reader sees a whole message or
// none. Zeros everywhere (a new, empty memfd) mean: no daemon has run yet.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "sys/result.hpp"

namespace hostchanfs::fs {

struct SessionHeader {
  std::uint64_t generation = 0;   // daemons started; restarts = generation - 1
  std::int64_t daemon_pid = 0;    // the current daemon
  std::uint32_t init_in_len = 0;  // bytes at kInitInOffset, 0: not kept
  std::uint32_t init_out_len = 0; // bytes at kInitOutOffset, 0: not kept
};

inline constexpr off_t kInitInOffset = 4096;
inline constexpr off_t kInitOutOffset = 8192;
inline constexpr off_t kInFlightOffset = 12288;
inline constexpr std::size_t kMaxInitMessage = 4096;
inline constexpr std::size_t kInFlightSlots = 512;  // 4 KiB of uint64_t
inline constexpr off_t kBackingOffset = 16384;
inline constexpr std::size_t kBackingSlots = 65536;  // inodes open through passthrough at once
inline constexpr std::size_t kBackingTableSize = 64 + kBackingSlots * 24 + 4032;  // whole pages
inline constexpr std::size_t kSessionRecordSize = kBackingOffset + kBackingTableSize;
static_assert(kSessionRecordSize % 4096 == 0);

struct SessionRecord {
  SessionHeader header;
  std::string init_in, init_out;  // empty when not kept

  std::uint64_t restarts() const { return header.generation > 0 ? header.generation - 1 : 0; }
};

// The record in `fd` (zeros for an empty memfd; lengths beyond the bound read as 0).
Result<SessionRecord> read_session_record(int fd);

// The keeper, before it starts a daemon: generation + 1, and the new daemon's pid once
// it has one (0 before the fork). Returns the new generation.
Result<std::uint64_t> begin_generation(int fd);
Result<void> record_daemon_pid(int fd, pid_t pid);

// The daemon: the kernel's INIT request and the reply to it.
Result<void> keep_init_message(int fd, bool reply, const void* bytes, std::size_t len);

}  // namespace hostchanfs::fs
