// `--charge writer`: the connection's passthrough backing ids, by inode, kept where the
// next daemon on the same connection finds them (the session record, fs/session_record.hpp).
//
// Why: a backing id (FUSE_DEV_IOC_BACKING_OPEN) belongs to the FUSE connection, which
// outlives a daemon, and the kernel binds an inode that is open through passthrough to
// the id of its first open: every later open of that inode must carry the same id (a new
// id for the same backing file is another fuse_backing, and the open fails with EIO).
// A restarted daemon must therefore know the ids the dead one got, and close each one
// exactly when the store's persistent open count of its inode reaches 0 (a RELEASE of a
// handle the dead daemon opened comes to its successor).
//
// Layout (at kBackingOffset in the record): a header (the last id the kernel handed out,
// and whether a BACKING_OPEN is in progress), then slots {ino, generation, id, closing};
// a slot is live while id != 0. Slots up to `used` have ever been written (the rest of
// the memfd is never touched, so it costs no memory).
//
// Crash safety (a daemon killed at any instruction; every step is a store into a shared
// mapping of the memfd, which outlives the writer):
//   open:  opening = 1; id = BACKING_OPEN; slot {ino, gen, id}; last_id = id; opening = 0
//   close: slot.closing = 1; BACKING_CLOSE(id); slot.id = 0
// The next daemon (reconcile) closes every slot marked closing (ENOENT when the dead one
// got that far), and, when an open was in progress, the id the kernel gives after last_id
// (ids are allocated cyclically from 1, so it is last_id + 1) unless a slot records it:
// the dead daemon got it and died before writing it down. An id that no slot records
// was never sent to the kernel in a reply, so closing it is always safe. The one leak
// left: that guess is wrong once the connection has used 2^31 ids and the kernel wraps
// around (then at most one id per daemon death, until the connection ends).
//
// Not thread-safe: the caller (Passthrough) serializes every call under its mutex, which
// also makes BACKING_OPENs one at a time (the reconciliation above relies on it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "shm/store.hpp"
#include "sys/mapping.hpp"
#include "sys/result.hpp"

namespace hostchanfs::fs {

struct BackingSlot;
struct BackingTableHeader;

// What a session record's table holds, read without a daemon (for tests and diagnostics).
struct BackingIdsSeen {
  std::int32_t last_id = 0;
  std::vector<std::int32_t> live;  // ids of live slots
};
Result<BackingIdsSeen> peek_backing_ids(int session_fd);

class BackingIds {
 public:
  // The table in the session record `session_fd` (grown to hold it if it is shorter), or
  // in memory of this process alone when -1 (a daemon no keeper restarts).
  static Result<BackingIds> map(int session_fd);

  // After a daemon death, before anything else uses the table: closes what the dead
  // daemon was closing and the id it got and did not record. How many ids it closed.
  unsigned reconcile(int fuse_fd);

  struct Entry {
    std::int32_t id;
    std::uint64_t generation;
  };
  // The live id of `ino`, and the generation it was opened for, if any.
  std::optional<Entry> find(shm::Ino ino) const;
  // Live slots (ino, generation), for the start-up sweep.
  std::vector<std::pair<shm::Ino, std::uint64_t>> live() const;
  std::size_t live_count() const { return index_.size(); }

  // A new id for `backing_fd`, recorded for (ino, generation); ENFILE when the table is full.
  Result<std::int32_t> open(int fuse_fd, shm::Ino ino, std::uint64_t generation, int backing_fd);
  // Closes the id of `ino` (any generation), if one is recorded.
  void close(int fuse_fd, shm::Ino ino);

  // Tests only (HOSTCHANFS_TEST_DIE_IN_BACKING=open|close, the connection's first daemon):
  // SIGKILL right after BACKING_OPEN returns, before the id is recorded ("open"), or once
  // an id is marked closing, before BACKING_CLOSE ("close"): the two deaths reconcile()
  // repairs.
  void die_for_tests(std::string point) { die_at_ = std::move(point); }

 private:
  explicit BackingIds(Mapping table) : table_(std::move(table)) {}
  BackingTableHeader& header() const;
  BackingSlot& slot(std::uint32_t i) const;
  void close_slot(int fuse_fd, std::uint32_t i);

  Mapping table_;
  std::unordered_map<shm::Ino, std::uint32_t> index_;  // ino -> live slot
  std::vector<std::uint32_t> free_;                    // free slots below header().used
  std::string die_at_;
};

}  // namespace hostchanfs::fs
