// Request metrics of one channel's daemon, in a small memfd the controller made and reads
// (mountctl/metrics.hpp turns them into Prometheus metrics): requests by operation, errors
// by errno, and a latency histogram. The daemon only adds to relaxed atomics (lock-free, so
// address-free: the same memory is mapped in both processes); the controller only reads.
// Counters start at zero in a new memfd and keep counting across daemon restarts on the
// same memfd.
//
// Layout (RequestCounters, version 1): a header naming the layout, then fixed arrays. An
// operation is numbered by its place in kOperationNames, an errno by its value (up to
// kMaxErrno; larger ones share the last slot), a latency by the first bucket whose bound
// it does not exceed.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

#include "sys/mapping.hpp"
#include "sys/result.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::fs {

// The FUSE operations the daemon serves, as the boundary names them (fs/ops_table.cpp).
inline constexpr std::array<std::string_view, 34> kOperationNames = {
    "lookup",     "forget",    "getattr",     "setattr",         "readlink",  "mknod",
    "mkdir",      "unlink",    "rmdir",       "symlink",         "rename",    "link",
    "open",       "read",      "write",       "flush",           "release",   "fsync",
    "opendir",    "readdir",   "releasedir",  "fsyncdir",        "statfs",    "setxattr",
    "getxattr",   "listxattr", "removexattr", "create",          "write_buf", "forget_multi",
    "fallocate",  "readdirplus", "copy_file_range", "lseek"};
inline constexpr std::size_t kMaxErrno = 134;  // EHWPOISON is 133
// Upper bounds of the latency buckets, in seconds (the last bucket is +Inf).
inline constexpr std::array<double, 12> kLatencyBounds = {
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.1, 1.0};

inline constexpr std::uint64_t kCountersMagic = 0x68636d6574726963;  // "hcmetric"
inline constexpr std::uint32_t kCountersVersion = 1;

struct RequestCounters {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t reserved;
  std::atomic<std::uint64_t> requests[kOperationNames.size()];
  std::atomic<std::uint64_t> errors[kMaxErrno + 1];
  std::atomic<std::uint64_t> latency_buckets[kLatencyBounds.size() + 1];  // not cumulative
  std::atomic<std::uint64_t> latency_sum_ns;
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

// The number of an operation name, or nullopt for one not in kOperationNames.
constexpr std::optional<std::size_t> operation_index(std::string_view name) noexcept {
  for (std::size_t i = 0; i < kOperationNames.size(); ++i) {
    if (kOperationNames[i] == name) return i;
  }
  return std::nullopt;
}

// The counters in a memfd, mapped: made by the controller (create), written by the daemon
// (attach), read by the controller.
class RequestMetrics {
 public:
  // A new memfd "hostchanfs-metrics" holding zeroed counters.
  static Result<UniqueFd> create();
  // Map the counters in `fd`: EINVAL when it is too small or holds another layout.
  static Result<RequestMetrics> attach(int fd);

  void record(std::size_t operation, std::chrono::nanoseconds latency) noexcept;
  void record_error(int errno_value) noexcept;
  const RequestCounters& counters() const noexcept {
    return *reinterpret_cast<const RequestCounters*>(mapping_.data());
  }

 private:
  RequestCounters& mutable_counters() noexcept {
    return *reinterpret_cast<RequestCounters*>(mapping_.data());
  }
  Mapping mapping_;
};

// The counters this daemon process records into: one daemon serves one channel, and
// serve() sets them from --metrics-fd for as long as it serves (null otherwise: nothing is
// counted, and a request pays for no clock reading).
RequestMetrics* daemon_metrics() noexcept;
void set_daemon_metrics(RequestMetrics* metrics) noexcept;

// Times one request from its handler's start to its end (the reply is sent inside it),
// as the boundary (fs/boundary.hpp) handles it.
class RequestTimer {
 public:
  explicit RequestTimer(std::size_t operation) noexcept
      : metrics_(daemon_metrics()), operation_(operation) {
    if (metrics_) start_ = std::chrono::steady_clock::now();
  }
  ~RequestTimer() {
    if (metrics_) metrics_->record(operation_, std::chrono::steady_clock::now() - start_);
  }
  RequestTimer(const RequestTimer&) = delete;
  RequestTimer& operator=(const RequestTimer&) = delete;

 private:
  RequestMetrics* metrics_;
  std::size_t operation_;
  std::chrono::steady_clock::time_point start_;
};

// An error reply, counted when the daemon counts.
inline void count_error_reply(int errno_value) noexcept {
  if (RequestMetrics* m = daemon_metrics()) m->record_error(errno_value);
}

}  // namespace hostchanfs::fs
