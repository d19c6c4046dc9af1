#include "fs/backing_ids.hpp"

#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>

#include "fs/fuse_abi.hpp"
#include "fs/session_record.hpp"
#include "sys/errno_text.hpp"
#include "sys/log.hpp"
#include "sys/memfd.hpp"

namespace hostchanfs::fs {

// In the session record: written by one daemon at a time, read by the next.
struct BackingTableHeader {
  std::atomic<std::int32_t> last_id;   // the last id BACKING_OPEN returned
  std::atomic<std::uint32_t> opening;  // 1 while a BACKING_OPEN is in progress
  std::atomic<std::uint32_t> used;     // slots ever written
  std::uint32_t reserved[13];
};
struct BackingSlot {
  std::atomic<std::uint64_t> ino;
  std::atomic<std::uint64_t> generation;
  std::atomic<std::int32_t> id;         // 0: free
  std::atomic<std::uint32_t> closing;   // 1: BACKING_CLOSE of `id` in progress
};
static_assert(sizeof(BackingTableHeader) == 64 && sizeof(BackingSlot) == 24);
static_assert(sizeof(BackingTableHeader) + kBackingSlots * sizeof(BackingSlot) <= kBackingTableSize);
static_assert(std::atomic<std::int32_t>::is_always_lock_free && std::atomic<std::uint64_t>::is_always_lock_free);

namespace {

// BACKING_CLOSE of `id`: 0, or the errno (ENOENT: no such id on the connection).
int close_id(int fuse_fd, std::int32_t id) {
  auto arg = static_cast<std::uint32_t>(id);
  return ::ioctl(fuse_fd, abi::kDevIocBackingClose, &arg) < 0 ? errno : 0;
}

}  // namespace

Result<BackingIdsSeen> peek_backing_ids(int session_fd) {
  BackingTableHeader h{};
  if (::pread(session_fd, &h, sizeof h, kBackingOffset) < 0) return last_errc();
  BackingIdsSeen seen;
  seen.last_id = h.last_id.load();
  std::uint32_t used = std::min<std::uint32_t>(h.used.load(), kBackingSlots);
  for (std::uint32_t i = 0; i < used; ++i) {
    BackingSlot s{};
    off_t at = kBackingOffset + static_cast<off_t>(sizeof h + i * sizeof s);
    if (::pread(session_fd, &s, sizeof s, at) < 0) return last_errc();
    if (s.id.load() != 0) seen.live.push_back(s.id.load());
  }
  return seen;
}

Result<BackingIds> BackingIds::map(int session_fd) {
  if (session_fd < 0) {
    HC_TRY(anonymous, Mapping::map_anonymous(kBackingTableSize));
    return BackingIds(std::move(anonymous));
  }
  HC_TRY(size, fd_size(session_fd));
  if (size < kSessionRecordSize && ::ftruncate(session_fd, kSessionRecordSize) < 0) return last_errc();
  HC_TRY(shared, Mapping::map_shared(session_fd, kBackingTableSize, kBackingOffset));
  BackingIds ids(std::move(shared));
  if (ids.header().used.load() > kBackingSlots) return std::errc::bad_message;
  for (std::uint32_t i = 0; i < ids.header().used.load(); ++i) {
    BackingSlot& s = ids.slot(i);
    if (s.id.load() == 0) {
      ids.free_.push_back(i);
    } else {
      ids.index_[s.ino.load()] = i;
    }
  }
  return ids;
}

BackingTableHeader& BackingIds::header() const { return *reinterpret_cast<BackingTableHeader*>(table_.data()); }

BackingSlot& BackingIds::slot(std::uint32_t i) const {
  return reinterpret_cast<BackingSlot*>(table_.data() + sizeof(BackingTableHeader))[i];
}

unsigned BackingIds::reconcile(int fuse_fd) {
  auto log = log::get("fs");
  unsigned closed = 0;
  for (auto it = index_.begin(); it != index_.end();) {
    std::uint32_t i = it->second;
    ++it;
    if (slot(i).closing.load() == 0) continue;
    std::int32_t id = slot(i).id.load();
    close_slot(fuse_fd, i);
    ++closed;
    log->info("backing ids: closed id {}, which the dead daemon was closing", id);
  }
  BackingTableHeader& h = header();
  if (h.opening.load() != 0) {
    std::int32_t last = h.last_id.load();
    std::int32_t next = last == INT_MAX ? 1 : last + 1;
    bool recorded = false;
    for (const auto& [ino, i] : index_) recorded = recorded || slot(i).id.load() == next;
    if (recorded) {
      h.last_id.store(next);
    } else if (close_id(fuse_fd, next) == 0) {
      h.last_id.store(next);
      ++closed;
      log->info("backing ids: closed id {}, which the dead daemon got and did not record", next);
    }
    h.opening.store(0);
  }
  return closed;
}

std::optional<BackingIds::Entry> BackingIds::find(shm::Ino ino) const {
  auto it = index_.find(ino);
  if (it == index_.end()) return std::nullopt;
  return Entry{slot(it->second).id.load(), slot(it->second).generation.load()};
}

std::vector<std::pair<shm::Ino, std::uint64_t>> BackingIds::live() const {
  std::vector<std::pair<shm::Ino, std::uint64_t>> out;
  for (const auto& [ino, i] : index_) out.emplace_back(ino, slot(i).generation.load());
  return out;
}

Result<std::int32_t> BackingIds::open(int fuse_fd, shm::Ino ino, std::uint64_t generation, int backing_fd) {
  close(fuse_fd, ino);  // a stale generation's id
  BackingTableHeader& h = header();
  if (free_.empty()) {
    // A new slot is counted before it is written: a slot below `used` with id 0 is free.
    if (h.used.load() >= kBackingSlots) return std::errc::too_many_files_open_in_system;
    free_.push_back(h.used.load());
    h.used.store(h.used.load() + 1);
  }
  std::uint32_t i = free_.back();
  h.opening.store(1);
  abi::BackingMap map{};
  map.fd = backing_fd;
  int id = ::ioctl(fuse_fd, abi::kDevIocBackingOpen, &map);
  if (id <= 0) {
    std::errc e = id < 0 ? last_errc() : std::errc::io_error;
    h.opening.store(0);
    return e;
  }
  if (die_at_ == "open") ::raise(SIGKILL);
  BackingSlot& s = slot(i);
  s.ino.store(ino);
  s.generation.store(generation);
  s.closing.store(0);
  s.id.store(id);
  free_.pop_back();
  h.last_id.store(id);
  h.opening.store(0);
  index_[ino] = i;
  return id;
}

void BackingIds::close(int fuse_fd, shm::Ino ino) {
  auto it = index_.find(ino);
  if (it == index_.end()) return;
  std::uint32_t i = it->second;
  close_slot(fuse_fd, i);
}

void BackingIds::close_slot(int fuse_fd, std::uint32_t i) {
  BackingSlot& s = slot(i);
  s.closing.store(1);
  if (die_at_ == "close") ::raise(SIGKILL);
  std::int32_t id = s.id.load();
  if (int err = close_id(fuse_fd, id); err != 0 && err != ENOENT)
    log::get("fs")->warn("backing ids: closing id {} of inode {}: {}", id, s.ino.load(), errno_text(err));
  index_.erase(s.ino.load());
  s.id.store(0);
  s.closing.store(0);
  free_.push_back(i);
}

}  // namespace hostchanfs::fs
