// Dedupe: what the most recent mutating requests did, so that a request the kernel sends
// again after a daemon's death (FUSE_NOTIFY_RESEND: the dead daemon had read it and not
// answered) is answered with the reply it would have had, instead of being applied twice
// (a resent O_EXCL create must not get EEXIST for its own file, a resent rename must not
// undo itself, a resent release must not close twice).
//
// A ring of kDedupeSlots outcomes in the superblock, keyed by the request's unique id
// (resend bit cleared). A request's outcome is written in the tx that applies it, so a
// request is applied if and only if its outcome is recorded: a resend that finds it is
// answered from it; one that does not was never applied and runs as new. Failures change
// nothing and are not recorded (running one again fails again, or succeeds on a state
// that has changed since, as a first attempt would). The ring must be longer than the
// requests that can be in flight at a death (FUSE's background limit plus one per
// blocked caller): 4096 is ample.
//
// No index: a resend is looked up by scanning the ring's ids (32 KiB, a few
// microseconds), which only a daemon restart pays, instead of a B+tree insert and erase
// that every mutation would pay. The ring changes in txs; find() runs under the tx mutex
// (the caller passes its Tx).
#pragma once

#include <cstdint>
#include <optional>

#include "shm/persist/store_schema.hpp"
#include "shm/persist/tx.hpp"
#include "shm/store.hpp"

namespace hostchanfs::shm {

using persist::store::Outcome;

// The store's mutating calls, as recorded (a reused unique cannot match another kind).
enum class Mutation : std::uint32_t {
  kMknod = 1, kMkdir, kSymlink, kLink, kUnlink, kRmdir, kRename, kOpen, kCreate, kRelease,
  kSetattr, kWrite, kFallocate, kSetxattr, kRemovexattr, kCopyFileRange, kAccessed, kTmpfile,
};

class Dedupe {
 public:
  explicit Dedupe(persist::store::Superblock& sb) noexcept : sb_(sb) {}

  // The outcome recorded for `req`, if it was applied.
  std::optional<Outcome> find(const persist::Tx& held, const Request& req, Mutation op) const;
  // In the tx that applies `req` (nothing for a request without identity).
  void record(persist::Tx& tx, const Request& req, Mutation op, Ino ino = 0, std::uint64_t generation = 0,
              std::uint64_t value = 0);

 private:
  persist::store::Superblock& sb_;
};

}  // namespace hostchanfs::shm
