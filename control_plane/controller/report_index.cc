#include "control_plane/controller/report_index.h"

namespace meshplug::control_plane::controller {
namespace {

const std::set<std::string> kNoAgents;

template <typename Key>
void Mark(std::map<Key, std::set<std::string>>& index, const Key& key, const std::string& agent, int delta) {
  if (delta > 0) {
    index[key].insert(agent);
    return;
  }
  auto it = index.find(key);
  if (it == index.end()) return;
  it->second.erase(agent);
  if (it->second.empty()) index.erase(it);
}

template <typename Key>
const std::set<std::string>& Agents(const std::map<Key, std::set<std::string>>& index, const Key& key) {
  auto it = index.find(key);
  return it == index.end() ? kNoAgents : it->second;
}

// Whether the two reports put the agent under the same keys of every index.
bool IndexedAlike(const translate::Report& a, const translate::Report& b) {
  return a.mounted_plugins == b.mounted_plugins && a.matched_chains == b.matched_chains &&
         a.applied_configs == b.applied_configs && a.copied_services == b.copied_services &&
         a.conflicts == b.conflicts;
}

}  // namespace

void ReportIndex::Update(const std::string& agent, const translate::Report* before, const translate::Report* now) {
  // Most translations index the agent as before (a new config value, script or endpoint):
  // taking it out of every set of 10,000 agents and putting it back was 2% of a push.
  if (before && now && IndexedAlike(*before, *now)) return;
  if (before) Add(agent, *before, -1);
  if (now) Add(agent, *now, +1);
}

void ReportIndex::Add(const std::string& agent, const translate::Report& r, int delta) {
  for (const auto& plugin : r.mounted_plugins) Mark(plugins_, plugin, agent, delta);
  for (const auto& chain : r.matched_chains) Mark(chains_, chain, agent, delta);
  for (const auto& config : r.applied_configs) Mark(configs_, config, agent, delta);
  for (const auto& service : r.copied_services) Mark(copies_, service, agent, delta);
  for (const auto& [config, messages] : r.conflicts) {
    auto& counts = conflicts_[config];
    for (const auto& m : messages) {
      if ((counts[m] += delta) <= 0) counts.erase(m);
    }
    if (counts.empty()) conflicts_.erase(config);
  }
}

const std::set<std::string>& ReportIndex::PluginAgents(const std::string& plugin) const { return Agents(plugins_, plugin); }

const std::set<std::string>& ReportIndex::ChainAgents(const translate::ObjectKey& chain) const {
  return Agents(chains_, chain);
}

const std::set<std::string>& ReportIndex::ConfigAgents(const translate::ObjectKey& config) const {
  return Agents(configs_, config);
}

std::set<std::string> ReportIndex::ConfigConflicts(const translate::ObjectKey& config) const {
  std::set<std::string> out;
  if (auto it = conflicts_.find(config); it != conflicts_.end()) {
    for (const auto& [message, _] : it->second) out.insert(message);
  }
  return out;
}

}  // namespace meshplug::control_plane::controller
