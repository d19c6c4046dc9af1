#include "mountctl/connection.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace hostchanfs::mountctl {

Connection::Input Connection::read_lines(std::vector<std::string>& lines) {
  char buf[16384];
  ssize_t n = ::read(fd_.get(), buf, sizeof buf);
  if (n < 0) return errno == EAGAIN || errno == EINTR ? Input::kOpen : Input::kError;
  if (n == 0) return Input::kClosed;
  in_.append(buf, static_cast<std::size_t>(n));
  std::size_t start = 0;
  for (std::size_t nl; (nl = in_.find('\n', scanned_)) != std::string::npos; scanned_ = nl + 1) {
    if (nl - start > kMaxLine) return Input::kTooLong;
    lines.emplace_back(in_, start, nl - start);
    start = nl + 1;
  }
  in_.erase(0, start);
  scanned_ = in_.size();
  return in_.size() > kMaxLine ? Input::kTooLong : Input::kOpen;
}

bool Connection::queue(std::string line) {
  if (sent_ > 0 && sent_ >= out_.size() / 2) {  // drop what was written, now and then
    out_.erase(0, sent_);
    sent_ = 0;
  }
  if (out_.size() - sent_ + line.size() > kMaxQueued) return false;
  out_ += line;
  return true;
}

bool Connection::flush() {
  while (sent_ < out_.size()) {
    ssize_t n = ::send(fd_.get(), out_.data() + sent_, out_.size() - sent_, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN;
    }
    sent_ += static_cast<std::size_t>(n);
  }
  out_.clear();
  sent_ = 0;
  return true;
}

}  // namespace hostchanfs::mountctl
