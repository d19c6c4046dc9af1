#include "mountctl/metrics.hpp"

#include <prometheus/exposer.h>
#include <prometheus/text_serializer.h>

#include <cstring>  // strerrorname_np
#include <limits>
#include <sstream>

#include <fmt/format.h>

#include "fs/session_record.hpp"
#include "shm/store.hpp"

namespace hostchanfs::mountctl {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(const char* name, const char* help, MetricType type) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

ClientMetric labelled(const ChannelSource& ch, std::vector<ClientMetric::Label> more = {}) {
  ClientMetric m;
  m.label = {{"host_path", ch.host_path}, {"owner", ch.owner_id}};
  m.label.insert(m.label.end(), more.begin(), more.end());
  return m;
}

ClientMetric gauge(const ChannelSource& ch, double value, std::vector<ClientMetric::Label> more = {}) {
  ClientMetric m = labelled(ch, std::move(more));
  m.gauge.value = value;
  return m;
}

ClientMetric counter(const ChannelSource& ch, double value, std::vector<ClientMetric::Label> more = {}) {
  ClientMetric m = labelled(ch, std::move(more));
  m.counter.value = value;
  return m;
}

// The errno's name ("ENOSPC"), or its number for one without a name.
std::string errno_label(std::size_t value) {
  const char* name = strerrorname_np(static_cast<int>(value));
  return name ? name : std::to_string(value);
}

ClientMetric latency(const ChannelSource& ch, const fs::RequestCounters& c) {
  ClientMetric m = labelled(ch);
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= fs::kLatencyBounds.size(); ++i) {
    cumulative += c.latency_buckets[i].load(std::memory_order_relaxed);
    double bound = i < fs::kLatencyBounds.size() ? fs::kLatencyBounds[i]
                                                 : std::numeric_limits<double>::infinity();
    m.histogram.bucket.push_back({cumulative, bound});
  }
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = static_cast<double>(c.latency_sum_ns.load(std::memory_order_relaxed)) / 1e9;
  return m;
}

}  // namespace

void MetricsBoard::put(ChannelSource source) {
  std::lock_guard lock(mutex_);
  std::string host = source.host_path;
  channels_.insert_or_assign(std::move(host), std::move(source));
}

void MetricsBoard::erase(const std::string& host_path) {
  std::lock_guard lock(mutex_);
  channels_.erase(host_path);
}

std::vector<MetricFamily> MetricsBoard::Collect() const {
  auto bytes_used = family("hostchanfs_channel_bytes_used", "Bytes of file data in the channel (4 KiB pages)", MetricType::Gauge);
  auto bytes_quota = family("hostchanfs_channel_bytes_quota", "The channel's size limit in bytes", MetricType::Gauge);
  auto inodes_used = family("hostchanfs_channel_inodes_used", "Inodes in use in the channel", MetricType::Gauge);
  auto inodes_limit = family("hostchanfs_channel_inodes_limit", "The channel's inode limit", MetricType::Gauge);
  auto requests = family("hostchanfs_channel_requests_total", "FUSE requests served, by operation", MetricType::Counter);
  auto errors = family("hostchanfs_channel_errors_total", "Requests answered with an error, by errno", MetricType::Counter);
  auto duration = family("hostchanfs_channel_request_duration_seconds", "Time the daemon took to handle a request", MetricType::Histogram);
  auto restarts = family("hostchanfs_channel_daemon_restarts_total", "Times the channel's daemon was restarted", MetricType::Counter);
  auto state = family("hostchanfs_channel_state", "1 for the channel's state (running, failed)", MetricType::Gauge);
  auto count = family("hostchanfs_channels", "Channels the controller owns", MetricType::Gauge);

  std::lock_guard lock(mutex_);
  ClientMetric total;
  total.gauge.value = static_cast<double>(channels_.size());
  count.metric.push_back(total);
  for (const auto& [host, ch] : channels_) {
    std::uint64_t max_inodes = ch.max_inodes;
    if (ch.meta) {
      if (auto u = shm::peek_usage(ch.meta.get())) {
        bytes_used.metric.push_back(gauge(ch, static_cast<double>(u.value().pages_used * shm::kPageSize)));
        inodes_used.metric.push_back(gauge(ch, static_cast<double>(u.value().inodes_used)));
        if (max_inodes == 0) max_inodes = u.value().max_inodes;
      }
    }
    bytes_quota.metric.push_back(gauge(ch, static_cast<double>(ch.quota_bytes)));
    inodes_limit.metric.push_back(gauge(ch, static_cast<double>(max_inodes)));
    // The keeper counts restarts in the session record, which it changes at each one.
    std::uint64_t restarted = 0;
    if (ch.session) {
      if (auto r = fs::read_session_record(ch.session.get())) restarted = r.value().restarts();
    }
    restarts.metric.push_back(counter(ch, static_cast<double>(restarted)));
    for (const char* s : {"running", "failed"}) {
      state.metric.push_back(gauge(ch, ch.state == s ? 1.0 : 0.0, {{"state", s}}));
    }
    if (!ch.requests) continue;
    const fs::RequestCounters& c = ch.requests->counters();
    for (std::size_t op = 0; op < fs::kOperationNames.size(); ++op) {
      auto n = c.requests[op].load(std::memory_order_relaxed);
      if (n) requests.metric.push_back(counter(ch, static_cast<double>(n), {{"op", std::string(fs::kOperationNames[op])}}));
    }
    for (std::size_t e = 1; e <= fs::kMaxErrno; ++e) {
      auto n = c.errors[e].load(std::memory_order_relaxed);
      if (n) errors.metric.push_back(counter(ch, static_cast<double>(n), {{"errno", errno_label(e)}}));
    }
    duration.metric.push_back(latency(ch, c));
  }
  return {count,    bytes_used, bytes_quota, inodes_used, inodes_limit,
          requests, errors,     duration,    restarts,    state};
}

std::string metrics_text(const std::vector<MetricFamily>& families) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

struct MetricsServer::Impl {
  std::unique_ptr<prometheus::Exposer> exposer;
  std::shared_ptr<MetricsBoard> board;  // kept alive while served (the exposer holds a weak_ptr)
};

MetricsServer::MetricsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MetricsServer::~MetricsServer() = default;

Expected<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string& address,
                                                              std::shared_ptr<MetricsBoard> board) {
  auto impl = std::make_unique<Impl>();
  try {
    impl->exposer = std::make_unique<prometheus::Exposer>(address, 1);
  } catch (const std::exception& ex) {
    std::string why = ex.what();
    while (!why.empty() && (why.back() == '.' || why.back() == ' ')) why.pop_back();
    return Error::bad_input(fmt::format(
        "cannot serve metrics at {} ({}): give --metrics-listen HOST:PORT that is free on this host",
        address, why));
  }
  impl->board = std::move(board);
  impl->exposer->RegisterCollectable(impl->board, "/metrics");
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(impl)));
}

}  // namespace hostchanfs::mountctl
