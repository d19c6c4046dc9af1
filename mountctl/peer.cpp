#include "mountctl/peer.hpp"

#include <sys/stat.h>

#include <fmt/format.h>

#include "sys/log.hpp"

namespace hostchanfs::mountctl {

namespace {

bool same_mount_namespace(pid_t pid) {
  struct stat ours {}, theirs {};
  return ::stat("/proc/self/ns/mnt", &ours) == 0 &&
         ::stat(fmt::format("/proc/{}/ns/mnt", pid).c_str(), &theirs) == 0 &&
         ours.st_ino == theirs.st_ino && ours.st_dev == theirs.st_dev;
}

}  // namespace

ucred peer_of(int socket_fd) {
  ucred peer{};
  socklen_t len = sizeof peer;
  ::getsockopt(socket_fd, SOL_SOCKET, SO_PEERCRED, &peer, &len);
  return peer;
}

Expected<void> authorize_peer(const ucred& peer, const std::string& run_dir) {
  auto log = log::get("controller");
  if (peer.uid != 0) {
    log->warn("refused a request from uid {} (pid {})", peer.uid, peer.pid);
    return Error::refused("the hostchanfs controller answers root only");
  }
  if (!same_mount_namespace(peer.pid)) {
    log->warn("refused a request from pid {} in another mount namespace", peer.pid);
    return Error::refused(fmt::format(
        "the hostchanfs controller of {} runs in another mount namespace: its channels are "
        "not visible from yours (use another --run-dir)", run_dir));
  }
  return success();
}

}  // namespace hostchanfs::mountctl
