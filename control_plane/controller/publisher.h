// Translates agents and publishes their resources to the snapshot cache: the part every
// agent shares (the destinations) once per change of what makes them, then each agent's
// own part laid over it; an agent whose own part did not change gets new destinations
// under it as it was, held back during bursts of changes. Keeps each agent's last
// translation report for status and change impact.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "control_plane/controller/report_index.h"
#include "control_plane/translate/mesh_state.h"
#include "control_plane/translate/translate.h"
#include "control_plane/xds/agent_registry.h"
#include "control_plane/xds/resources.h"
#include "control_plane/xds/snapshot_cache.h"

namespace meshplug::control_plane::controller {

// The last translation's report of each agent.
using Reports = std::map<std::string, translate::Report>;

class Publisher {
 public:
  using Clock = std::chrono::steady_clock;
  Publisher(xds::SnapshotCache& cache, xds::AgentRegistry& registry,
            std::function<Clock::time_point()> now = Clock::now)
      : cache_(cache), registry_(registry), now_(std::move(now)) {}

  // Translates `agents` (those with a Workload in `state`) and publishes the resources
  // whose version changed. When the destinations changed, every other agent gets the new
  // ones under its own part as last translated: callers pass every agent whose own part
  // the change may alter (ChangeImpact), and it adds those holding a copy of a
  // destination Service that changed (Report::copied_services). If `may_hold` (changes
  // keep coming: a connect storm), that update waits, when the last one took long, until
  // as long again has passed (RebaseDue): at most half of the time goes to pushing
  // endpoints to the agents already connected, and the translated ones are never held
  // back. The agents not in `agents` that mount one of `rescripted` (plugins whose
  // script alone changed: ChangeImpact::Rescripted) get its new PluginScript resource in
  // place of the old, without a translation. Called from one thread at a time, as is
  // RebaseDue.
  void Publish(const translate::MeshState& state, std::set<std::string> agents, bool may_hold = false,
               const std::set<std::string>& rescripted = {});
  // When the update of the other agents that Publish held back is due (Publish again
  // then); nullopt when none is held back.
  std::optional<Clock::time_point> RebaseDue() const;
  // A deleted workload: its report and resources go.
  void Remove(const std::string& agent);

  // Runs `read` with the reports turned around per resource and the names of the Plugins
  // that existed at the last Publish, under the publisher's lock. Thread-safe.
  void ReadIndex(const std::function<void(const ReportIndex&, const std::set<std::string>& plugins)>& read) const;
  // How many times `agent` was translated.
  int64_t Translations(const std::string& agent) const;

 private:
  // Destinations as agents of one egress scope receive them.
  struct Destinations {
    v1::Snapshot snapshot;
    std::shared_ptr<const xds::AgentResources> resources;
  };
  // Those of namespace `ns`'s workloads, made once per scope and generation.
  const Destinations& DestinationsFor(const translate::MeshState& state, const std::string& ns);
  // A batch's new scripts, each encoded once, and the agents that get them in place.
  struct Rescripts {
    std::vector<xds::ResourcePtr> scripts;
    std::set<std::string> agents;
  };
  // The new scripts of `rescripted` (plugins whose script alone changed) and the agents
  // not in `translated` that mount one of them.
  Rescripts Rescripting(const translate::MeshState& state, const std::set<std::string>& rescripted,
                        const std::set<std::string>& translated);
  // Publishes `agent`'s resources with `scripts` in place of its own of the same names.
  void Rescript(const std::string& agent, const std::vector<xds::ResourcePtr>& scripts);
  // The agents translated before and not in `translated`, over their new destinations;
  // those of `rescripts` it takes (and erases) get their new scripts in the same update.
  // Returns how many agents got new destinations.
  size_t Rebase(const translate::MeshState& state, const std::set<std::string>& translated, Rescripts& rescripts);
  // Adds to `agents` those whose own part holds a copy of a Service that is not the same
  // in `before` as in the destinations now.
  void AddCopyHolders(const v1::Snapshot& before, std::set<std::string>& agents) const;
  // Whether they were new (the cache keeps an agent's resources of the same version).
  bool SetResources(const std::string& agent, xds::Resources resources);

  xds::SnapshotCache& cache_;
  xds::AgentRegistry& registry_;
  const std::function<Clock::time_point()> now_;
  xds::ResourceInterner interner_;
  // The destinations, kept while the state's destinations_generation stays the same: a
  // Plugin, PluginChain or PluginConfig change does not make them again. Publish's thread.
  uint64_t generation_ = 0;
  v1::Snapshot all_;
  std::map<std::string, Destinations> by_scope_;
  std::map<std::string, Destinations> previous_scopes_;  // the last generation's, during Publish
  bool rebase_pending_ = false;  // other agents' destinations are older than the state's
  Clock::time_point next_rebase_{};
  Clock::time_point held_since_{};  // when the pending update became pending
  std::map<std::string, const Destinations*> by_namespace_;
  mutable std::mutex mu_;
  Reports reports_;                   // under mu_
  // Follows reports_: written under mu_ by Publish's thread, which reads it without.
  ReportIndex index_;
  std::set<std::string> plugins_;     // under mu_
  std::map<std::string, int64_t> translations_;  // under mu_
};

}  // namespace meshplug::control_plane::controller
