// The dashboard's data (/api/mesh): the service graph with each edge's requests, success
// and latency, per service and per workload; every agent with its snapshot, ACK/NACK and
// its four chains in order; Plugins, PluginChains and PluginConfigs with their status
// (never a PluginConfig's values). The page itself (dashboard.html) polls it.
//
// Traffic comes straight from the agents' /stats, read by a thread of its own every two
// seconds while someone looks (and until 10 s after), from at most kMaxAgentsRead agents,
// one second each: a page never waits on agents, except a first look, which waits for
// the first reading up to 1.5 s.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <string>
#include <vector>

#include "common/traffic_stats.h"
#include "control_plane/api/resource_api.h"
#include "control_plane/xds/config_watcher.h"
#include "meshplug/v1/admin.pb.h"

namespace meshplug::control_plane::api {

// The page, built into the binary (no CDN, no build step).
extern const char kDashboardHtml[];

class Dashboard {
 public:
  static constexpr size_t kMaxAgentsRead = 100;

  Dashboard(std::function<std::vector<v1::AgentStatus>()> agents, const xds::ConfigWatcher& configs,
            ResourceApi& resources);
  ~Dashboard();

  std::string MeshJson();

  // The JSON of traffic rows grouped by `by` (exposed for tests).
  static std::string RowsJson(const std::vector<traffic::Row>& rows, traffic::GroupBy by);

 private:
  using Clock = std::chrono::steady_clock;
  struct Traffic {
    traffic::Golden golden;
    std::vector<std::string> unreadable;  // "agent (address): why"
    Clock::time_point at{};
    int64_t at_unix_ms = 0;  // for the page's requests per second between two readings
  };
  Traffic ReadAgents() const;
  void ReadWhileWatched();
  std::string ResourcesJson();

  std::function<std::vector<v1::AgentStatus>()> agents_;
  const xds::ConfigWatcher& configs_;
  ResourceApi& resources_;
  std::mutex mu_;
  std::condition_variable changed_;
  Traffic traffic_;
  Clock::time_point watched_until_{};
  bool refresh_asked_ = false;  // a first look: read now, not after the pause
  std::atomic<bool> stopping_{false};  // also read, without the lock, between agents
  std::thread reader_;  // last: it starts once the rest is ready
};

}  // namespace meshplug::control_plane::api
