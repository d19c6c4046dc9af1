#include "fs/passthrough.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "fs/fuse_abi.hpp"
#include "fs/session_resume.hpp"
#include "sys/errno_text.hpp"
#include "sys/log.hpp"

namespace hostchanfs::fs {

namespace {

constexpr char kMirrorName[] = "store-pages";

// "<ino>.<generation>", NUL-terminated, made without the heap: it is formed at every
// create, unlink and (readdirplus, stat) attribute overlay, and fmt::format's string was
// 2% of a writer create's daemon CPU in a pinned profile.
struct BackingName {
  static constexpr std::size_t kDigits = std::numeric_limits<std::uint64_t>::digits10 + 1;  // 20
  char text[2 * kDigits + 2];  // two numbers, the dot, the NUL
  const char* c_str() const noexcept { return text; }
};
BackingName backing_name(shm::Ino ino, std::uint64_t generation) {
  BackingName n;
  char* end = n.text + sizeof n.text - 1;
  char* p = std::to_chars(n.text, end, ino).ptr;
  *p++ = '.';
  p = std::to_chars(p, end, generation).ptr;
  *p = '\0';
  return n;
}

bool kernel_at_least(int major, int minor) {
  utsname u{};
  if (::uname(&u) < 0) return false;
  int ma = 0, mi = 0;
  if (std::sscanf(u.release, "%d.%d", &ma, &mi) != 2) return false;
  return ma > major || (ma == major && mi >= minor);
}

Result<void> set_option(int fs_fd, const char* key, const std::string& value) {
  if (::fsconfig(fs_fd, FSCONFIG_SET_STRING, key, value.c_str(), 0) < 0) return last_errc();
  return success();
}

bool later(const timespec& a, const timespec& b) {
  return a.tv_sec != b.tv_sec ? a.tv_sec > b.tv_sec : a.tv_nsec > b.tv_nsec;
}

timespec time_for(const shm::TimeChange& t) {
  switch (t.kind) {
    case shm::TimeChange::Kind::kNow: return timespec{0, UTIME_NOW};
    case shm::TimeChange::Kind::kSet: return t.value;
    case shm::TimeChange::Kind::kOmit: break;
  }
  return timespec{0, UTIME_OMIT};
}

// One session per process (as in session_io.cpp).
struct Negotiation {
  std::atomic<Passthrough*> active{nullptr};
  std::atomic<bool> offered{false};
  std::atomic<bool> negotiated{false};
};
Negotiation g_pt;

// The backing id the next OPEN/CREATE reply written by this thread carries (0: none).
thread_local int t_armed_backing_id = 0;
// Whether this thread's last open made the backing file (Passthrough::made_backing_file).
thread_local bool t_made_backing_file = false;

}  // namespace

std::optional<std::string> refuse_writer_charge() {
  if (!kernel_at_least(6, 9)) {
    utsname u{};
    ::uname(&u);
    return fmt::format("--charge writer needs FUSE passthrough (Linux 6.9 or later), and this kernel is {}: "
                       "use --charge channel",
                       u.release);
  }
  UniqueFd probe(::fsopen("tmpfs", FSOPEN_CLOEXEC));
  if (!probe)
    return fmt::format("--charge writer needs CAP_SYS_ADMIN for its private tmpfs and for FUSE passthrough "
                       "(fsopen tmpfs: {}): run as root or use --charge channel",
                       errno_text(errno));
  return std::nullopt;
}

Result<UniqueFd> make_backing_tmpfs(std::uint64_t quota_bytes, std::uint64_t max_inodes) {
  UniqueFd ctx(::fsopen("tmpfs", FSOPEN_CLOEXEC));
  if (!ctx) return last_errc();
  std::uint64_t pages = (quota_bytes + shm::kPageSize - 1) / shm::kPageSize;
  HC_TRYV(set_option(ctx.get(), "size", std::to_string(pages * shm::kPageSize)));
  // The store's inode limit is the channel's; the backing files (one per regular inode,
  // plus the store mirror and the root) never reach this one.
  HC_TRYV(set_option(ctx.get(), "nr_inodes", std::to_string(max_inodes + 2)));
  HC_TRYV(set_option(ctx.get(), "mode", "0700"));
  if (::fsconfig(ctx.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0) return last_errc();
  UniqueFd mnt(::fsmount(ctx.get(), FSMOUNT_CLOEXEC,
                         MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
  if (!mnt) return last_errc();
  return mnt;
}

bool is_tmpfs_root(int fd) {
  struct statfs sf {};
  struct stat st {};
  return ::fstatfs(fd, &sf) == 0 && sf.f_type == TMPFS_MAGIC && ::fstat(fd, &st) == 0 &&
         S_ISDIR(st.st_mode) && st.st_ino == 1;
}

Result<std::uint64_t> backing_bytes_used(int backing_root) {
  struct statvfs v {};
  if (::fstatvfs(backing_root, &v) < 0) return last_errc();
  return static_cast<std::uint64_t>(v.f_blocks - v.f_bfree) * v.f_frsize;
}

Passthrough::Passthrough(UniqueFd backing_root, shm::Store& store, BackingIds ids)
    : root_(std::move(backing_root)), store_(store), ids_(std::move(ids)) {
  mirror_ = UniqueFd(::openat(root_.get(), kMirrorName, O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!mirror_) throw std::system_error(errno, std::generic_category(), "backing tmpfs: store mirror");
  std::lock_guard lk(charge_mutex_);
  // A restarted daemon finds the mirror as the last one left it; trim makes it exact.
  struct stat st {};
  if (::fstat(mirror_.get(), &st) == 0) mirrored_pages_ = static_cast<std::uint64_t>(st.st_size) / shm::kPageSize;
  trim_locked();
}

void Passthrough::set_fuse_fd(int fd) {
  std::lock_guard lk(ids_mutex_);  // before the loop: no shard is in use yet
  fuse_fd_ = fd;
  if (const char* die = std::getenv("HOSTCHANFS_TEST_DIE_IN_BACKING"); die && !session_resumed())
    ids_.die_for_tests(die);
  ids_.reconcile(fuse_fd_);
  sweep_orphans();
}

void Passthrough::sweep_orphans() {
  // An id whose inode the store counts no open of: the dead daemon released the last
  // handle and died before closing it (no kernel file can hold it: the store counts an
  // open before its reply is sent, and a release after the kernel has let its file go).
  for (auto [ino, generation] : ids_.live()) {
    auto attr = store_.getattr(ino);
    if (!attr || attr.value().generation != generation || attr.value().opens == 0) ids_.close(fuse_fd_, ino);
  }
  UniqueFd dir_fd(::openat(root_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  std::unique_ptr<DIR, int (*)(DIR*)> dir(dir_fd ? ::fdopendir(dir_fd.release()) : nullptr, ::closedir);
  std::vector<std::string> orphans;
  while (dirent* e = dir ? ::readdir(dir.get()) : nullptr) {
    unsigned long long ino = 0, generation = 0;
    char tail = 0;
    if (std::sscanf(e->d_name, "%llu.%llu%c", &ino, &generation, &tail) != 2) continue;
    auto attr = store_.getattr(ino);
    if (!attr || attr.value().generation != generation || !S_ISREG(attr.value().mode) ||
        (attr.value().nlink == 0 && attr.value().opens == 0))
      orphans.emplace_back(e->d_name);
  }
  for (const auto& name : orphans) {
    if (::unlinkat(root_.get(), name.c_str(), 0) == 0)
      log::get("fs")->info("backing tmpfs: removed {}, whose inode is gone (a daemon died before it could)", name);
  }
}

Result<int> Passthrough::open_backing_file(const shm::Attr& a, Inode inode) {
  BackingName name = backing_name(a.ino, a.generation);
  auto open_named = [&](int extra) {
    return ::openat(root_.get(), name.c_str(), O_RDWR | O_CLOEXEC | O_LARGEFILE | extra, 0600);
  };
  if (inode == Inode::kExisting) {
    if (int fd = open_named(0); fd >= 0) return fd;
    if (errno != ENOENT) return last_errc();
  }
  if (int fd = open_named(O_CREAT | O_EXCL); fd >= 0) {
    // A new backing file starts with the inode's times, not the moment of its first open.
    timespec times[2] = {a.atime, a.mtime};
    t_made_backing_file = a.size == 0 && ::futimens(fd, times) == 0;
    return fd;
  }
  // It exists (a resent CREATE, or an open after a restart): the dead daemon made it.
  if (errno != EEXIST) return last_errc();
  if (int fd = open_named(0); fd >= 0) return fd;
  return last_errc();
}

bool Passthrough::made_backing_file() noexcept { return t_made_backing_file; }

Result<void> Passthrough::open(const shm::Attr& a, Inode inode) {
  t_armed_backing_id = 0;
  t_made_backing_file = false;
  HC_TRY(id, open_unarmed(a, inode));
  t_armed_backing_id = id;
  return success();
}

Result<std::int32_t> Passthrough::open_unarmed(const shm::Attr& a, Inode inode) {
  if (!g_pt.negotiated.load()) return std::errc::operation_not_supported;
  Shard& sh = shard(a.ino);
  std::lock_guard lk(sh.mutex);
  Backing& b = sh.table[a.ino];
  if (b.fd && b.generation != a.generation) b = Backing{};  // a stale slot reused
  b.generation = a.generation;
  if (!b.fd) {
    auto fd = open_backing_file(a, inode);
    if (!fd) {
      sh.table.erase(a.ino);
      return fd.error();
    }
    b.fd = UniqueFd(fd.value());
  }
  std::lock_guard ids_lock(ids_mutex_);
  auto known = ids_.find(a.ino);
  std::int32_t id = known && known->generation == a.generation ? known->id : 0;
  if (id == 0) {
    // The inode is open through no id (the kernel would refuse a second one): a new one.
    auto opened = ids_.open(fuse_fd_, a.ino, a.generation, b.fd.get());
    if (!opened) {
      log::get("fs")->warn("backing tmpfs: FUSE_DEV_IOC_BACKING_OPEN for inode {}: {}", a.ino,
                           errno_text(static_cast<int>(opened.error())));
      sh.table.erase(a.ino);
      return opened.error();
    }
    id = opened.value();
  }
  return id;
}

void Passthrough::settle_locked(shm::Ino ino, std::uint64_t generation) {
  auto now = store_.getattr(ino);
  bool same = now && now.value().generation == generation;
  if (same && now.value().opens > 0) return;  // still open: the last release settles it
  {
    std::lock_guard ids_lock(ids_mutex_);
    if (auto known = ids_.find(ino); known && known->generation == generation) ids_.close(fuse_fd_, ino);
  }
  Shard& sh = shard(ino);
  if (auto it = sh.table.find(ino); it != sh.table.end() && it->second.generation == generation) sh.table.erase(it);
  if (!same || now.value().nlink == 0) {
    BackingName name = backing_name(ino, generation);
    if (::unlinkat(root_.get(), name.c_str(), 0) < 0 && errno != ENOENT)
      log::get("fs")->warn("backing tmpfs: unlink {}: {}", name.c_str(), errno_text(errno));
  }
}

void Passthrough::release(shm::Ino ino) {
  {
    Shard& sh = shard(ino);
    std::lock_guard lk(sh.mutex);
    // Our descriptor, or (for a handle the dead daemon opened) the recorded id, names
    // the generation that was open.
    std::optional<std::uint64_t> generation;
    if (auto it = sh.table.find(ino); it != sh.table.end()) {
      generation = it->second.generation;
    } else if (auto known = known_id(ino)) {
      generation = known->generation;
    }
    if (generation) settle_locked(ino, *generation);
  }
  settle_store_pages();
}

void Passthrough::forgotten(shm::Ino /*ino*/) { settle_store_pages(); }

void Passthrough::unlinked(const shm::Store::Unlinked& victim) {
  if (S_ISREG(victim.mode)) {
    std::lock_guard lk(shard(victim.ino).mutex);
    settle_locked(victim.ino, victim.generation);
  }
  settle_store_pages();
}

int Passthrough::fd_locked(shm::Ino ino) {
  Shard& sh = shard(ino);
  if (auto it = sh.table.find(ino); it != sh.table.end()) return it->second.fd.get();
  auto known = known_id(ino);
  if (!known) return -1;
  // Open since before a restart: our descriptor died with the daemon; the name is kept.
  auto attr = store_.getattr(ino);
  if (!attr || attr.value().generation != known->generation) return -1;
  auto fd = open_backing_file(attr.value(), Inode::kExisting);
  if (!fd) return -1;
  sh.table[ino] = Backing{known->generation, UniqueFd(fd.value())};
  return fd.value();
}

int Passthrough::fd_of(shm::Ino ino) {
  std::lock_guard lk(shard(ino).mutex);
  return fd_locked(ino);
}

std::optional<BackingIds::Entry> Passthrough::known_id(shm::Ino ino) {
  std::lock_guard lk(ids_mutex_);
  return ids_.find(ino);
}

void Passthrough::overlay(shm::Attr& a) {
  if (!S_ISREG(a.mode)) return;
  // By name, without a shard lock: readdirplus calls this under the store's locks, and the
  // shard locks are held across store calls (open, release), so taking one inverted the order
  // (TSan). The name lasts as long as the inode has a link or an open.
  struct stat st {};
  BackingName name = backing_name(a.ino, a.generation);
  int rc = ::fstatat(root_.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW);
  if (rc < 0) return;  // never opened: the store's attributes are the file's
  a.size = static_cast<std::uint64_t>(st.st_size);
  a.blocks = static_cast<std::uint64_t>(st.st_blocks);
  a.atime = st.st_atim;
  a.mtime = st.st_mtim;
  if (later(st.st_mtim, a.ctime)) a.ctime = st.st_mtim;
}

Result<void> Passthrough::apply(const shm::Attr& a, const shm::AttrChange& change) {
  if (!S_ISREG(a.mode)) return success();
  bool times = change.atime.kind != shm::TimeChange::Kind::kOmit || change.mtime.kind != shm::TimeChange::Kind::kOmit;
  if (!change.size && !times) return success();
  int fd = -1;
  UniqueFd own;
  {
    Shard& sh = shard(a.ino);
    std::lock_guard lk(sh.mutex);
    auto it = sh.table.find(a.ino);
    if (it != sh.table.end() && it->second.generation == a.generation) fd = it->second.fd.get();
  }
  if (fd < 0) {
    HC_TRY(opened, open_backing_file(a, Inode::kExisting));
    own = UniqueFd(opened);
    fd = own.get();
  }
  if (change.size && ::ftruncate(fd, static_cast<off_t>(*change.size)) < 0) return last_errc();
  if (times) {
    timespec ts[2] = {time_for(change.atime), time_for(change.mtime)};
    if (::futimens(fd, ts) < 0) return last_errc();
  }
  return success();
}

void Passthrough::overlay(shm::StatFs& s) {
  struct statvfs v {};
  if (::fstatvfs(root_.get(), &v) < 0) return;
  s.blocks = v.f_blocks;
  s.blocks_free = v.f_bfree;
}

Result<void> Passthrough::reserve_locked(std::uint64_t pages) {
  std::uint64_t want = store_.pages_used() + pages;
  if (want <= mirrored_pages_) return success();
  if (::fallocate(mirror_.get(), 0, 0, static_cast<off_t>(want * shm::kPageSize)) < 0) return last_errc();
  mirrored_pages_ = want;
  return success();
}

void Passthrough::trim_locked() {
  std::uint64_t used = store_.pages_used();
  if (used == mirrored_pages_) return;
  off_t len = static_cast<off_t>(used * shm::kPageSize);
  // Growing never fails for pages the store already holds: they were reserved first.
  if (used < mirrored_pages_ ? ::ftruncate(mirror_.get(), len) < 0
                             : ::fallocate(mirror_.get(), 0, 0, len) < 0) {
    log::get("fs")->warn("backing tmpfs: the store mirror stays at {} pages, not {}: {}", mirrored_pages_, used,
                         errno_text(errno));
    return;
  }
  mirrored_pages_ = used;
}

void Passthrough::settle_store_pages() {
  std::lock_guard lk(charge_mutex_);
  trim_locked();
}

// --- the session's I/O layer ---------------------------------------------------------------

void set_passthrough(Passthrough* p) noexcept { g_pt.active = p; }

void passthrough_note_init(const fuse_init_in& in, std::size_t len) noexcept {
  if (!g_pt.active.load()) return;
  bool ext = (in.flags & FUSE_INIT_EXT) != 0 && len >= offsetof(fuse_init_in, flags2) + sizeof in.flags2;
  g_pt.offered = ext && (in.flags2 & (abi::kPassthrough >> 32)) != 0;
}

void passthrough_patch_reply(std::uint64_t unique, std::uint64_t init_unique, iovec* iov,
                             int count) noexcept {
  if (count < 2 || iov[0].iov_len < sizeof(fuse_out_header)) return;
  auto* out = static_cast<fuse_out_header*>(iov[0].iov_base);
  if (out->unique == 0) return;  // a notification
  if (init_unique != 0 && out->unique == init_unique) {
    if (!g_pt.active.load() || out->error != 0 || iov[1].iov_len < offsetof(abi::InitOut, unused)) return;
    auto* init = static_cast<abi::InitOut*>(iov[1].iov_base);
    if (g_pt.offered && !(init->flags & FUSE_WRITEBACK_CACHE)) {
      init->flags |= FUSE_INIT_EXT;
      init->flags2 |= static_cast<std::uint32_t>(abi::kPassthrough >> 32);
      init->max_stack_depth = 1;
      g_pt.negotiated = true;
    } else {
      log::get("fs")->error("--charge writer: the kernel does not offer FUSE passthrough (CONFIG_FUSE_PASSTHROUGH "
                            "off?): every open of a regular file fails with EOPNOTSUPP");
    }
    return;
  }
  if (t_armed_backing_id == 0 || out->unique != unique) return;
  int id = std::exchange(t_armed_backing_id, 0);
  if (out->error != 0 || iov[1].iov_len < sizeof(abi::OpenOut)) return;
  // OPEN: the fuse_open_out alone; CREATE: fuse_entry_out then fuse_open_out.
  auto* open = reinterpret_cast<abi::OpenOut*>(static_cast<char*>(iov[1].iov_base) + iov[1].iov_len -
                                               sizeof(abi::OpenOut));
  open->open_flags &= ~static_cast<std::uint32_t>(FOPEN_KEEP_CACHE | FOPEN_DIRECT_IO);
  open->open_flags |= abi::kFopenPassthrough;
  open->backing_id = id;
}

bool passthrough_negotiated() noexcept { return g_pt.negotiated.load(); }

}  // namespace hostchanfs::fs
