// Which agents a batch of store changes can affect, so only they are translated again:
// - Namespaces, HTTPRoutes and the MeshConfig → every agent;
// - a Workload → its own agent;
// - a Service → the agents of the workloads it selects, before and after, and those that
//   mount a plugin with a PluginConfig naming it (the Publisher adds those holding a copy
//   of a destination Service that changed);
// - a Plugin created, deleted or given another priority → the agents that mount it or
//   miss it; one whose script (or metadata) alone changed → none: its PluginScript
//   resource, named after it, is the only thing to change, and the Publisher swaps it in
//   for the agents that mount it (Rescripted);
// - a PluginChain → the agents it matched before or matches now;
// - a PluginConfig → the agents that mount its plugin, before and after.
// The others' own part does not depend on the change: they get the new destinations under
// it (Publisher). Pure.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "control_plane/controller/report_index.h"
#include "control_plane/store/store.h"
#include "control_plane/translate/mesh_state.h"
#include "control_plane/translate/translate.h"

namespace meshplug::control_plane::controller {

class ChangeImpact {
 public:
  // What `events` touch, read from the state before they are applied.
  ChangeImpact(const translate::MeshState& before, const std::vector<store::Event>& events);

  bool everyone() const { return everyone_; }
  // The agents to translate again (unless everyone()): from `index`, the reports as last
  // translated (before the change), and from `after`, the state with the change applied.
  std::set<std::string> Agents(const translate::MeshState& after, const ReportIndex& index) const;
  // Plugins whose script resource alone changed: their agents are not translated again
  // for them (those translated for another reason, a plugin changed twice in the batch
  // included, get the script with their translation).
  const std::set<std::string>& Rescripted() const { return rescripted_; }

 private:
  bool everyone_ = false;
  std::set<std::string> workloads_;           // agents of Workloads that changed
  std::set<translate::ObjectKey> services_;   // Services that changed
  std::set<std::string> service_agents_;      // agents those selected before the change
  std::set<std::string> plugins_;             // plugins whose mounts may change
  std::set<std::string> rescripted_;          // plugins whose mounts stay as they are
  std::set<translate::ObjectKey> chains_;     // PluginChains that changed
  std::set<translate::ObjectKey> configs_;    // PluginConfigs that changed
};

}  // namespace meshplug::control_plane::controller
