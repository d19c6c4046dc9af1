// One client connection of the controller, from its event loop's side: a non-blocking
// socket, the bytes it sent that are not yet a whole line, and the answers it has not read
// yet. Nothing here ever blocks or grows without bound, so that no client can stall the
// loop (and with it every other client and channel):
//   - a request line longer than kMaxLine closes the connection (after one error answer);
//   - each read scans only the bytes it added for a newline, never the whole buffer again;
//   - answers are queued and written as the socket takes them (the loop asks for EPOLLOUT
//     while the queue is not empty); a client whose unread answers pass kMaxQueued is
//     dropped, never waited for.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "sys/unique_fd.hpp"

namespace hostchanfs::mountctl {

class Connection {
 public:
  static constexpr std::size_t kMaxLine = 64 * 1024;
  static constexpr std::size_t kMaxQueued = 1024 * 1024;

  explicit Connection(UniqueFd fd) : fd_(std::move(fd)) {}
  int fd() const { return fd_.get(); }

  enum class Input {
    kOpen,     // read what there was (maybe nothing): go on
    kClosed,   // the client closed its end (complete lines before that are still given)
    kTooLong,  // a line passed kMaxLine: answer once, then close
    kError,    // the socket failed: drop it
  };
  // One read: appends every complete line it finishes to `lines` (without the newline).
  Input read_lines(std::vector<std::string>& lines);

  // Queues one answer (a whole line). False when the client has more than kMaxQueued
  // unread: drop it.
  bool queue(std::string line);
  // Writes as much of the queue as the socket takes now. False when the socket failed.
  bool flush();
  bool has_output() const { return sent_ < out_.size(); }

  // No more requests are read; the connection is closed once its output is written.
  void close_after_output() { closing_ = true; }
  bool closing() const { return closing_; }

 private:
  UniqueFd fd_;
  std::string in_;
  std::size_t scanned_ = 0;  // bytes of in_ known to hold no newline
  std::string out_;
  std::size_t sent_ = 0;  // bytes of out_ already written
  bool closing_ = false;
};

}  // namespace hostchanfs::mountctl
