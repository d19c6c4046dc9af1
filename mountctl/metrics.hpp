// The controller's Prometheus metrics (prometheus-cpp): one set per channel, labelled by
// host path and owner, sampled when asked from the memory the channel's processes share
// with the controller (never through the mount: a hung daemon must not hang a scrape).
//
//   hostchanfs_channel_bytes_used / _bytes_quota       gauge, bytes (4 KiB pages, as tmpfs)
//   hostchanfs_channel_inodes_used / _inodes_limit     gauge
//   hostchanfs_channel_requests_total{op}              counter, FUSE requests served
//   hostchanfs_channel_errors_total{errno}             counter, error replies (ENOSPC, ...)
//   hostchanfs_channel_request_duration_seconds        histogram, handler time per request
//   hostchanfs_channel_daemon_restarts_total           counter
//   hostchanfs_channel_state{state}                    gauge, 1 for the channel's state
//   hostchanfs_channels                                gauge, channels the controller owns
//
// `hostchanfs metrics` prints the text exposition once (asked of the controller over its
// socket); `hostchanfs controller --metrics-listen ADDR` also serves it at
// http://ADDR/metrics (prometheus-cpp's Exposer, on its own threads: the board below is
// what they share with the event loop, under one mutex).
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "fs/metrics.hpp"
#include "mountctl/error.hpp"
#include "sys/unique_fd.hpp"

namespace hostchanfs::mountctl {

// What sampling a channel needs, at any time and from any thread.
struct ChannelSource {
  std::string host_path;
  std::string owner_id;
  std::uint64_t quota_bytes = 0;
  std::uint64_t max_inodes = 0;  // 0: read from the store
  std::string state;             // state_name()
  UniqueFd meta;                                // a duplicate of the store's metadata memfd
  UniqueFd session;                             // a duplicate of the session record (restarts)
  std::optional<fs::RequestMetrics> requests;  // the daemon's counters, when it has them
};

// The channels as the metrics see them: the controller puts and erases, scrapes collect.
class MetricsBoard : public prometheus::Collectable {
 public:
  void put(ChannelSource source);
  void erase(const std::string& host_path);
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  // Lock order: taken alone; Collect holds it while it reads the shared memory.
  mutable std::mutex mutex_;
  std::map<std::string, ChannelSource> channels_;
};

// The text exposition format (version 0.0.4) of `families`.
std::string metrics_text(const std::vector<prometheus::MetricFamily>& families);

// Serves `board` at http://<address>/metrics until destroyed. `address` is "HOST:PORT"
// (prometheus-cpp's civetweb listener: "127.0.0.1:9464", "[::1]:9464"). kBadInput, one
// line, when it cannot listen there.
class MetricsServer {
 public:
  static Expected<std::unique_ptr<MetricsServer>> start(const std::string& address,
                                                        std::shared_ptr<MetricsBoard> board);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

 private:
  struct Impl;
  explicit MetricsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hostchanfs::mountctl
