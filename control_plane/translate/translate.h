// Translation (docs/spec.md §3): from the mesh's resources and one agent's workload to that
// agent's snapshot. Pure functions: same input, same bytes. What every agent gets alike
// (the destinations) is translated once per change, not once per agent: with N agents
// and N workloads, per-agent destinations made every change cost O(N²).
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "control_plane/translate/mesh_state.h"
#include "meshplug/v1/snapshot.pb.h"
#include "resources/egress_hosts.h"

namespace meshplug::control_plane::translate {

// What translation found out about the resources for this agent, for their status.
struct Report {
  std::vector<ObjectKey> matched_chains;  // PluginChains whose selectors match the agent
  // PluginChain → plugins it names that do not exist (skipped until they are created).
  std::map<ObjectKey, std::set<std::string>> missing_plugins;
  std::set<std::string> mounted_plugins;     // script plugins in any chain of the agent
  std::set<ObjectKey> applied_configs;       // PluginConfigs attached for the agent
  // Destinations it holds its own copy of (to attach configs): a change of one of them in
  // the shared destinations must reach that copy.
  std::set<std::string> copied_services;
  // PluginConfig → "conflicts with <ns>/<name> for service <svc>: the older one wins".
  std::map<ObjectKey, std::set<std::string>> conflicts;
};

// Every Service as a destination, with its clusters and endpoints: the part of every
// agent's snapshot that is the same for all of them.
v1::Snapshot TranslateDestinations(const MeshState& state);

// What a workload of namespace `ns` may call (resources/egress_hosts.h): its Namespace's
// meshplug.io/egress-hosts, else MeshConfig's spec.traffic.egressHosts, with "." resolved
// to `ns` and sorted (equal scopes compare equal); nullopt when neither says: everything.
// Stored values are valid (validation refuses others).
std::optional<std::vector<resources::EgressHost>> EgressScope(const MeshState& state, const std::string& ns);

// `destinations` with only the Services `scope` allows, and their clusters and endpoints.
v1::Snapshot ScopeDestinations(const v1::Snapshot& destinations, const std::vector<resources::EgressHost>& scope);

struct Translation {
  // The agent's own resources: settings, chain set, scripts, its inbound services with
  // their clusters and endpoints, and copies of the destinations it has PluginConfigs
  // for, with the configs attached. The rest of its snapshot is `destinations` as they
  // are. No version: xds::ToResources computes it over both.
  v1::Snapshot snapshot;
  Report report;
};

// Reads no workload but `agent`; of the Services, those that select it, those that
// PluginConfigs of its plugins name, and of `destinations` the Services it copies
// (Report::copied_services), never their endpoints. The controller counts on it to leave
// other agents' own parts alone when a workload or a Service changes (ChangeImpact,
// Publisher); keep it so, or change them with it.
Translation Translate(const MeshState& state, const v1::Snapshot& destinations, const mesh::v1::Workload& agent);

// The PluginScript resource of `plugin`, named after it: a new script replaces the old one
// under the same name, so a change of the script alone leaves every chain set as it was.
v1::PluginScript ScriptOf(const mesh::v1::Plugin& plugin);
// Whether a Plugin that changed from `before` to `after` differs, for Translate, only in
// its PluginScript resource (its script, its metadata): of a Plugin only its priority
// reaches the chain sets. ChangeImpact counts on it; keep it so with Translate.
bool OnlyScriptDiffers(const mesh::v1::Plugin& before, const mesh::v1::Plugin& after);

// Whether `chain`'s pod and namespace selectors select `workload` (docs/spec.md §3.2).
bool ChainSelects(const MeshState& state, const mesh::v1::PluginChain& chain, const mesh::v1::Workload& workload);

// Cluster names: "<svc>.<ns>|<port>" and, for an agent's own app, "…|local".
std::string ClusterName(const std::string& service, uint32_t port, bool local);

}  // namespace meshplug::control_plane::translate
