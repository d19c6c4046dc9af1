#include "fs/boundary.hpp"
#include "fs/ops.hpp"

#include <cstring>  // strerrorname_np

#include "sys/errno_text.hpp"

namespace hostchanfs::fs {

void log_handler_exception(fuse_req_t req, const char* op, const char* what, int replied) {
  Filesystem& fs = filesystem_of(req);
  if (replied == 0) {
    fs.log->error("{}: {} failed with an exception: {} (no reply: the operation has none)",
                  fs.mountpoint, op, what);
    return;
  }
  fs.log->error("{}: {} failed with an exception: {} (replying {}: {})", fs.mountpoint, op, what,
                strerrorname_np(replied), errno_text(replied));
}

namespace {

// init runs before any request and cannot fail in a way a reply could carry.
void init_boundary(void* userdata, fuse_conn_info* conn) noexcept {
  try {
    ops::init(userdata, conn);
  } catch (...) {
    std::terminate();  // an unusable connection: die loudly rather than serve half-set
  }
}

// No getlk/setlk/flock: the kernel then keeps POSIX and flock locks itself, which is
// right for a filesystem that only this mount can change.
constexpr fuse_lowlevel_ops kOps = {
    .init = init_boundary,
    .destroy = nullptr,  // the store outlives the session; nothing to do
    .lookup = Boundary<"lookup", ops::lookup>::call,
    .forget = Boundary<"forget", ops::forget, Reply::kNone>::call,
    .getattr = Boundary<"getattr", ops::getattr>::call,
    .setattr = Boundary<"setattr", ops::setattr>::call,
    .readlink = Boundary<"readlink", ops::readlink>::call,
    .mknod = Boundary<"mknod", ops::mknod>::call,
    .mkdir = Boundary<"mkdir", ops::mkdir>::call,
    .unlink = Boundary<"unlink", ops::unlink>::call,
    .rmdir = Boundary<"rmdir", ops::rmdir>::call,
    .symlink = Boundary<"symlink", ops::symlink>::call,
    .rename = Boundary<"rename", ops::rename>::call,
    .link = Boundary<"link", ops::link>::call,
    .open = Boundary<"open", ops::open>::call,
    .read = Boundary<"read", ops::read>::call,
    .write = nullptr,  // write_buf takes every write
    .flush = Boundary<"flush", ops::flush>::call,
    .release = Boundary<"release", ops::release>::call,
    .fsync = Boundary<"fsync", ops::fsync>::call,
    .opendir = Boundary<"opendir", ops::opendir>::call,
    .readdir = Boundary<"readdir", ops::readdir>::call,
    .releasedir = Boundary<"releasedir", ops::releasedir>::call,
    .fsyncdir = Boundary<"fsyncdir", ops::fsyncdir>::call,
    .statfs = Boundary<"statfs", ops::statfs>::call,
    .setxattr = Boundary<"setxattr", ops::setxattr>::call,
    .getxattr = Boundary<"getxattr", ops::getxattr>::call,
    .listxattr = Boundary<"listxattr", ops::listxattr>::call,
    .removexattr = Boundary<"removexattr", ops::removexattr>::call,
    .access = nullptr,  // default_permissions: the kernel checks
    .create = Boundary<"create", ops::create>::call,
    .getlk = nullptr,  // locks: the kernel's local ones
    .setlk = nullptr,
    .bmap = nullptr,
    .ioctl = nullptr,
    .poll = nullptr,
    .write_buf = Boundary<"write_buf", ops::write_buf>::call,
    .retrieve_reply = nullptr,
    .forget_multi = Boundary<"forget_multi", ops::forget_multi, Reply::kNone>::call,
    .flock = nullptr,
    .fallocate = Boundary<"fallocate", ops::fallocate>::call,
    .readdirplus = Boundary<"readdirplus", ops::readdirplus>::call,
    .copy_file_range = Boundary<"copy_file_range", ops::copy_file_range>::call,
    .lseek = Boundary<"lseek", ops::lseek>::call,
};

}  // namespace

const fuse_lowlevel_ops& lowlevel_ops() { return kOps; }

}  // namespace hostchanfs::fs
