// The one boundary between libfuse and the handlers: no exception crosses into libfuse.
// Handlers reply as their last step, so an exception means nothing was replied yet; the
// boundary replies EIO (ENOMEM for an allocation failure) and logs what happened, with
// the errno it replied.
#pragma once

#include <algorithm>
#include <cerrno>
#include <exception>
#include <new>
#include <type_traits>

#include "fs/context.hpp"
#include "fs/metrics.hpp"

namespace hostchanfs::fs {

// A string usable as a template argument: the operation's name for log lines.
template <std::size_t N>
struct OpName {
  constexpr OpName(const char (&s)[N]) { std::copy_n(s, N, text); }  // NOLINT: implicit on purpose
  char text[N];
};

// `replied`: the errno the boundary is about to reply, or 0 for an operation that gets
// no reply at all.
void log_handler_exception(fuse_req_t req, const char* op, const char* what, int replied);

enum class Reply { kErrno, kNone };  // forget/forget_multi expect no reply at all

template <OpName Name, auto Handler, Reply R = Reply::kErrno>
struct Boundary;

template <OpName Name, class... Args, void (*Handler)(fuse_req_t, Args...), Reply R>
struct Boundary<Name, Handler, R> {
  static void call(fuse_req_t req, Args... args) noexcept {
    constexpr bool kReplies = R == Reply::kErrno;
    constexpr auto kOperation = operation_index(Name.text);
    static_assert(kOperation, "a new operation: add its name to fs::kOperationNames (fs/metrics.hpp)");
    RequestTimer timer(*kOperation);
    int err = kReplies ? EIO : 0;
    try {
      Handler(req, args...);
      return;
    } catch (const std::bad_alloc& e) {
      if (kReplies) err = ENOMEM;
      log_handler_exception(req, Name.text, e.what(), err);
    } catch (const std::exception& e) {
      log_handler_exception(req, Name.text, e.what(), err);
    } catch (...) {
      log_handler_exception(req, Name.text, "unknown exception", err);
    }
    if constexpr (R == Reply::kNone) {
      fuse_reply_none(req);
    } else {
      count_error_reply(err);
      fuse_reply_err(req, err);
    }
  }
};

}  // namespace hostchanfs::fs
