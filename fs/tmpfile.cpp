#include "fs/tmpfile.hpp"

#include <linux/fuse.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <new>

#include "fs/fuse_abi.hpp"
#include "fs/passthrough.hpp"
#include "fs/reply.hpp"
#include "fs/passthrough.hpp"
#include "fs/session_resume.hpp"
#include "sys/errno_text.hpp"

namespace hostchanfs::fs {

namespace {

// The entry's timeouts as fuse_entry_param's doubles become in a libfuse reply.
void set_timeout(double t, std::uint64_t& sec, std::uint32_t& nsec) {
  sec = static_cast<std::uint64_t>(t);
  nsec = static_cast<std::uint32_t>((t - static_cast<double>(sec)) * 1e9);
}

fuse_attr attr_of(const shm::Attr& a) {
  fuse_attr f{};
  f.ino = a.ino;
  f.size = a.size;
  f.blocks = a.blocks;
  f.atime = static_cast<std::uint64_t>(a.atime.tv_sec);
  f.mtime = static_cast<std::uint64_t>(a.mtime.tv_sec);
  f.ctime = static_cast<std::uint64_t>(a.ctime.tv_sec);
  f.atimensec = static_cast<std::uint32_t>(a.atime.tv_nsec);
  f.mtimensec = static_cast<std::uint32_t>(a.mtime.tv_nsec);
  f.ctimensec = static_cast<std::uint32_t>(a.ctime.tv_nsec);
  f.mode = a.mode;
  f.nlink = static_cast<std::uint32_t>(a.nlink);
  f.uid = a.uid;
  f.gid = a.gid;
  f.rdev = static_cast<std::uint32_t>(a.rdev);
  f.blksize = static_cast<std::uint32_t>(shm::kPageSize);
  return f;
}

// One reply on `fd`: the header and, on success, the entry and the open handle.
// 0 or the errno of the write (ENOENT: the request was interrupted, nobody waits).
int send_reply(int fd, std::uint64_t unique, int error, const fuse_entry_out* entry, const fuse_open_out* open) {
  fuse_out_header out{};
  out.unique = unique;
  out.error = -error;
  iovec iov[3] = {{&out, sizeof out}, {}, {}};
  int count = 1;
  if (error == 0) {
    iov[1] = {const_cast<fuse_entry_out*>(entry), sizeof *entry};
    iov[2] = {const_cast<fuse_open_out*>(open), sizeof *open};
    count = 3;
  }
  for (int i = 0; i < count; ++i) out.len += static_cast<std::uint32_t>(iov[i].iov_len);
  return resumable_writev(fd, iov, count) < 0 ? errno : 0;  // the resume record sees it answered
}

// The answer to one FUSE_TMPFILE; the errno to reply instead when it fails before that.
int make_tmpfile(int fd, const fuse_in_header& in, const fuse_create_in& arg, Filesystem& fs) {
  // The umask is the store's to apply (FUSE_DONT_MASK), as for every new inode.
  const shm::Caller caller{in.uid, in.gid, in.uid == 0, arg.umask};
  auto made = fs.store.create_unnamed(in.nodeid, arg.mode, caller, shm::Request{in.unique});
  if (!made) {
    int err = to_errno(made.error());
    fs.log->debug("{}: O_TMPFILE in inode {} failed: {}", fs.mountpoint, in.nodeid, errno_text(err));
    return err;
  }
  if (fs.passthrough) fs.passthrough->settle_store_pages();  // inherited ACLs (passthrough.hpp)
  const shm::Attr& a = made.value();
  fuse_open_out open{};
  open.open_flags = FOPEN_KEEP_CACHE;  // as every open of ours (fs/ops_data.cpp)
  if (fs.passthrough) {
    // --charge writer: through its backing file like every other open of a regular file
    // (the kernel refuses to mix passthrough and cached opens of one inode, which a
    // later open by name after linkat would be).
    auto id = fs.passthrough->open_unarmed(a, Passthrough::Inode::kCreated);
    if (!id) {
      close_handle(fs, a.ino);
      fs.store.forget(a.ino, 1);
      return to_errno(id.error());
    }
    open.open_flags = abi::kFopenPassthrough;  // FOPEN_KEEP_CACHE with it makes open fail
    open.padding = static_cast<std::uint32_t>(id.value());  // backing_id (7.40; this header is 7.38)
  }
  fuse_entry_out entry{};
  entry.nodeid = a.ino;
  entry.generation = a.generation;
  set_timeout(kEntryTimeout, entry.entry_valid, entry.entry_valid_nsec);
  set_timeout(kAttrTimeout, entry.attr_valid, entry.attr_valid_nsec);
  entry.attr = attr_of(fs.passthrough ? seen_attr(fs, a) : a);
  if (int err = send_reply(fd, in.unique, 0, &entry, &open); err != 0) {
    // Nobody received the file: its handle and lookup go back, and with them the file.
    fs.log->debug("{}: the O_TMPFILE reply was not received ({})", fs.mountpoint, errno_text(err));
    close_handle(fs, a.ino);
    fs.store.forget(a.ino, 1);
  }
  return 0;
}

}  // namespace

bool answer_tmpfile(int fd, const void* buf, std::size_t len, Filesystem& fs) noexcept {
  if (len < sizeof(fuse_in_header)) return false;
  fuse_in_header in;
  std::memcpy(&in, buf, sizeof in);
  if (in.opcode != abi::kOpTmpfile) return false;
  int err = EIO;
  try {
    if (len < sizeof in + sizeof(fuse_create_in)) {
      err = EINVAL;
    } else {
      fuse_create_in arg;
      std::memcpy(&arg, static_cast<const char*>(buf) + sizeof in, sizeof arg);
      err = make_tmpfile(fd, in, arg, fs);
    }
  } catch (const std::bad_alloc&) {
    err = ENOMEM;
  } catch (const std::exception& e) {
    fs.log->error("{}: O_TMPFILE failed with an exception: {} (replying EIO)", fs.mountpoint, e.what());
  } catch (...) {
    fs.log->error("{}: O_TMPFILE failed with an unknown exception (replying EIO)", fs.mountpoint);
  }
  if (err != 0) send_reply(fd, in.unique, err, nullptr, nullptr);
  return true;
}

}  // namespace hostchanfs::fs
