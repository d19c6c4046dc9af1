#include "fs/metrics.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <new>

#include "sys/memfd.hpp"

namespace hostchanfs::fs {

namespace {
std::atomic<RequestMetrics*> the_daemon_metrics{nullptr};
}  // namespace

RequestMetrics* daemon_metrics() noexcept { return the_daemon_metrics.load(std::memory_order_acquire); }
void set_daemon_metrics(RequestMetrics* metrics) noexcept {
  the_daemon_metrics.store(metrics, std::memory_order_release);
}

Result<UniqueFd> RequestMetrics::create() {
  HC_TRY(fd, make_memfd("hostchanfs-metrics", sizeof(RequestCounters)));
  HC_TRY(mapping, Mapping::map_shared(fd.get(), sizeof(RequestCounters)));
  // A new memfd reads as zeros: every counter starts at 0; only the header is written.
  auto* counters = new (mapping.data()) RequestCounters;
  counters->magic = kCountersMagic;
  counters->version = kCountersVersion;
  return fd;
}

Result<RequestMetrics> RequestMetrics::attach(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) < 0) return last_errc();
  if (static_cast<std::size_t>(st.st_size) < sizeof(RequestCounters)) return std::errc::invalid_argument;
  HC_TRY(mapping, Mapping::map_shared(fd, sizeof(RequestCounters)));
  const auto* counters = reinterpret_cast<const RequestCounters*>(mapping.data());
  if (counters->magic != kCountersMagic || counters->version != kCountersVersion) {
    return std::errc::invalid_argument;
  }
  RequestMetrics metrics;
  metrics.mapping_ = std::move(mapping);
  return metrics;
}

void RequestMetrics::record(std::size_t operation, std::chrono::nanoseconds latency) noexcept {
  RequestCounters& c = mutable_counters();
  if (operation < kOperationNames.size()) c.requests[operation].fetch_add(1, std::memory_order_relaxed);
  double seconds = std::chrono::duration<double>(latency).count();
  std::size_t bucket = static_cast<std::size_t>(
      std::lower_bound(kLatencyBounds.begin(), kLatencyBounds.end(), seconds) - kLatencyBounds.begin());
  c.latency_buckets[bucket].fetch_add(1, std::memory_order_relaxed);
  c.latency_sum_ns.fetch_add(static_cast<std::uint64_t>(std::max<std::int64_t>(latency.count(), 0)),
                             std::memory_order_relaxed);
}

void RequestMetrics::record_error(int errno_value) noexcept {
  if (errno_value <= 0) return;
  std::size_t slot = std::min<std::size_t>(static_cast<std::size_t>(errno_value), kMaxErrno);
  mutable_counters().errors[slot].fetch_add(1, std::memory_order_relaxed);
}

}  // namespace hostchanfs::fs
