// Keeps every agent's snapshot current: watches the store, debounces bursts, re-translates
// the agents a change can affect, and publishes their resources to the snapshot cache.
// Also registers agents that connect and removes them after a grace period.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "resources/object.h"
#include "control_plane/store/store.h"
#include "control_plane/translate/translate.h"
#include "control_plane/xds/agent_lifecycle.h"
#include "control_plane/xds/agent_registry.h"
#include "control_plane/xds/snapshot_cache.h"

namespace meshplug::control_plane::controller {

struct Options {
  std::chrono::milliseconds quiet{100};      // publish when no change came for this long
  std::chrono::milliseconds max_delay{1000}; // or when the first pending change is this old
  std::chrono::milliseconds grace{30000};    // a disconnected agent's endpoints stay this long
};

class MeshController : public xds::AgentLifecycle {
 public:
  MeshController(store::Store& store, xds::SnapshotCache& cache, xds::AgentRegistry& registry,
                 Options options = {});
  ~MeshController() override;

  // Loads the store, translates every agent, and starts following changes.
  absl::Status Start();
  void Stop();

  // An agent's stream announced `workload`: it is written to the store in the next cycle.
  // Refused when its namespace does not exist.
  absl::Status Register(const mesh::v1::Workload& workload) override;
  // The agent's last stream ended; its workload goes after the grace period.
  void Disconnected(const std::string& agent) override;

  // Status of Plugin, PluginChain, PluginConfig and Workload from the latest translations.
  void FillStatus(resources::Object& obj) const;

  // Waits until every store change up to `revision` is translated and published.
  bool WaitForRevision(int64_t revision, std::chrono::milliseconds timeout);
  int64_t Translations(const std::string& agent) const;

 private:
  using Clock = std::chrono::steady_clock;

  void Loop();
  void CommitRegistrations(std::map<std::string, mesh::v1::Workload> pending,
                           const std::vector<std::string>& expired);
  void Publish(std::vector<store::Event> events);
  void TranslateAgents(const std::set<std::string>& agents);
  std::set<std::string> AllAgents() const;

  store::Store& store_;
  xds::SnapshotCache& cache_;
  xds::AgentRegistry& registry_;
  const Options options_;
  xds::ResourceInterner interner_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::optional<Clock::time_point> first_change_, last_change_;
  std::map<std::string, mesh::v1::Workload> pending_registrations_;
  std::map<std::string, Clock::time_point> removal_deadlines_;
  // Below: written by the loop thread under mu_.
  translate::MeshState state_;
  std::map<std::string, translate::Report> reports_;
  std::map<std::string, int64_t> translations_;
  int64_t published_revision_ = 0;

  store::Store::Subscription subscription_;
  std::thread thread_;
};

}  // namespace meshplug::control_plane::controller
