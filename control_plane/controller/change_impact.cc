#include "control_plane/controller/change_impact.h"

#include "common/agent_id.h"

namespace meshplug::control_plane::controller {
namespace {

using resources::Kind;

// The plugin a PluginConfig configures in `state`, or "" when it is not there.
std::string ConfiguredPlugin(const translate::MeshState& state, const translate::ObjectKey& key) {
  auto it = state.plugin_configs.find(key);
  return it == state.plugin_configs.end() ? std::string() : it->second.object.spec().plugin();
}

// Whose own part holds `service` in `state`: the agents of the workloads it selects (as
// their inbound service), and the plugins of PluginConfigs that name it (the agents that
// mount one hold a copy of it with the config, or will once it exists).
void AddServiceUsers(const translate::MeshState& state, const translate::ObjectKey& service,
                     std::set<std::string>& agents, std::set<std::string>& plugins) {
  for (const translate::ObjectKey* workload : state.SelectedWorkloads(service)) {
    agents.insert(AgentId(workload->first, workload->second));
  }
  for (const auto& [key, pc] : state.plugin_configs) {
    for (const auto& ref : pc.object.spec().destination_refs()) {
      if (ref.name() == service.second && ref.namespace_() == service.first) plugins.insert(pc.object.spec().plugin());
    }
  }
}

// Whether Plugin event `ev` changes only the PluginScript resource of a plugin that
// existed in `before`.
bool OnlyScriptChanges(const translate::MeshState& before, const store::Event& ev) {
  if (ev.type != store::Event::Type::kPut) return false;
  auto it = before.plugins.find(ev.entry.key.name);
  mesh::v1::Plugin now;
  return it != before.plugins.end() && now.ParseFromString(ev.entry.value) &&
         translate::OnlyScriptDiffers(it->second.object, now);
}

}  // namespace

ChangeImpact::ChangeImpact(const translate::MeshState& before, const std::vector<store::Event>& events) {
  for (const auto& ev : events) {
    const auto& k = ev.entry.key;
    if (k.kind == Kind::kWorkload) {
      // Other agents' own part does not depend on it, only their destinations' endpoints.
      workloads_.insert(AgentId(k.ns, k.name));
      continue;
    }
    if (k.kind == Kind::kService) {
      // Other agents get it with their destinations. Those holding a copy of another
      // Service whose routes it changes, the Publisher finds (Report::copied_services).
      services_.insert({k.ns, k.name});
      continue;
    }
    if (translate::MakesDestinations(k.kind)) {
      everyone_ = true;
      continue;
    }
    switch (k.kind) {
      case Kind::kPlugin:
        (OnlyScriptChanges(before, ev) ? rescripted_ : plugins_).insert(k.name);
        break;
      case Kind::kPluginChain:
        chains_.insert({k.ns, k.name});
        break;
      case Kind::kPluginConfig:
        configs_.insert({k.ns, k.name});
        break;
      default:
        break;
    }
  }
  for (const auto& key : configs_) plugins_.insert(ConfiguredPlugin(before, key));
  for (const auto& key : services_) AddServiceUsers(before, key, service_agents_, plugins_);
}

std::set<std::string> ChangeImpact::Agents(const translate::MeshState& after, const ReportIndex& index) const {
  std::set<std::string> plugins = plugins_;
  for (const auto& key : configs_) plugins.insert(ConfiguredPlugin(after, key));
  std::set<std::string> affected = workloads_;
  affected.insert(service_agents_.begin(), service_agents_.end());
  for (const auto& key : services_) AddServiceUsers(after, key, affected, plugins);
  // As last translated: agents that mount (or miss) those plugins, or matched those chains.
  for (const auto& p : plugins) {
    for (const auto* agents : {&index.PluginAgents(p), &index.MissingAgents(p)}) {
      affected.insert(agents->begin(), agents->end());
    }
  }
  for (const auto& c : chains_) {
    const auto& agents = index.ChainAgents(c);
    affected.insert(agents.begin(), agents.end());
  }
  // After the change: agents the changed chains match now.
  for (const auto& key : chains_) {
    auto it = after.plugin_chains.find(key);
    if (it == after.plugin_chains.end()) continue;
    for (const auto& [wkey, wl] : after.workloads) {
      if (translate::ChainSelects(after, it->second, wl)) affected.insert(AgentId(wkey.first, wkey.second));
    }
  }
  return affected;
}

}  // namespace meshplug::control_plane::controller
