// Keeps every agent's snapshot current. It follows the store's change log, waits out
// bursts (Debouncer), writes agents' registrations (Registrations), works out which agents
// a batch of changes affects (ChangeImpact) and has them translated and published
// (Publisher). ResourceStatus answers the admin API's status questions.
#pragma once

#include <chrono>
#include <functional>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "common/periodic.h"
#include "control_plane/api/status_view.h"
#include "control_plane/controller/debouncer.h"
#include "control_plane/controller/publisher.h"
#include "control_plane/controller/registrations.h"
#include "control_plane/controller/resource_status.h"
#include "control_plane/store/store.h"
#include "control_plane/translate/mesh_state.h"
#include "control_plane/xds/agent_lifecycle.h"
#include "control_plane/xds/agent_registry.h"
#include "control_plane/xds/snapshot_cache.h"

namespace meshplug::control_plane::controller {

struct Options {
  std::chrono::milliseconds quiet{100};      // publish when no change came for this long (a change
                                             // after as long without any, but a registration, at once)
  std::chrono::milliseconds max_delay{1000}; // or when the first pending change is this old
  std::chrono::milliseconds grace{30000};    // a disconnected agent's endpoints stay this long
  // The agents connected to any control-plane replica, nullopt when unknown (unset: those
  // connected to this one).
  std::function<Registrations::ConnectedAgents()> connected = nullptr;
  // This replica's id in the store's live values (the clean-up leader's).
  std::string replica = "local";
  // How often the leading replica looks for registrations whose agent is gone unseen.
  std::chrono::milliseconds orphan_scan{30000};
};

class MeshController final : public xds::AgentLifecycle {
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
  const api::StatusView& status() const { return status_; }

  // The CA's trust changed (or is known for the first time): every agent gets it. Once
  // started, returns when the snapshots carrying it are published (or after `timeout`).
  void SetTrust(v1::TrustBundle trust, std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // Waits until every store change up to `revision` is translated and published.
  bool WaitForRevision(int64_t revision, std::chrono::milliseconds timeout);
  int64_t Translations(const std::string& agent) const { return publisher_.Translations(agent); }

 private:
  using Clock = std::chrono::steady_clock;

  void Loop();
  // Applies a batch of store changes to the state and publishes the agents it affects
  // (`everyone`: all of them). `bursting`: more changes keep coming (Debouncer::Bursting),
  // so the other agents' endpoints may be held back (Publisher::Publish).
  void Follow(const std::vector<store::Event>& events, bool everyone, bool bursting);
  // A workload was deleted (`old`: what it was, if known): its agent's resources and
  // status go, and an agent still connected here registers it again.
  void WorkloadGone(const std::string& agent, const mesh::v1::Workload* old);
  // Loads the whole store again (the change log no longer reaches back) and publishes all.
  void Reload();
  std::set<std::string> AllAgents() const;
  // Whether this control plane is the one replica that adopts orphaned registrations
  // (a live value: another replica takes over within its TTL if this one dies).
  bool LeadsCleanUp();

  store::Store& store_;
  xds::AgentRegistry& registry_;
  Publisher publisher_;
  ResourceStatus status_;
  Registrations registrations_;
  const std::function<Registrations::ConnectedAgents()> connected_;
  const std::chrono::milliseconds orphan_scan_;
  const std::string replica_;  // in the leader's live value

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;             // under mu_
  Debouncer debouncer_;               // under mu_
  int64_t published_revision_ = 0;    // under mu_
  std::optional<v1::TrustBundle> pending_trust_;  // under mu_
  int64_t trust_set_ = 0, trust_published_ = 0;   // under mu_: SetTrust calls, and those published
  translate::MeshState state_;        // the loop thread's (and Start's, before it)
  Clock::time_point last_cycle_{};    // the loop thread's: when it last handled what was due

  store::Store::Subscription subscription_;
  std::thread thread_;
  Periodic orphan_scanner_;  // the leader's look for registrations no agent holds
};

}  // namespace meshplug::control_plane::controller
