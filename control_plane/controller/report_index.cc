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

// Moves `agent` in one index from the keys `before` lists to those `now` lists (either may be
// null). Most translations index the agent as before (a new config value, script or
// endpoint): taking it out of every set of 10,000 agents and putting it back was 2% of a
// push, so equal keys are left alone.
template <typename Keys, typename Index>
void Move(Index& index, const Keys* before, const Keys* now, const std::string& agent) {
  if (before && now && *before == *now) return;
  if (before) {
    for (const auto& key : *before) Mark(index, key, agent, -1);
  }
  if (now) {
    for (const auto& key : *now) Mark(index, key, agent, +1);
  }
}

// The conflict messages `r` reports, counted by `delta` per config.
void Count(std::map<translate::ObjectKey, std::map<std::string, int>>& conflicts, const translate::Report& r,
           int delta) {
  for (const auto& [config, messages] : r.conflicts) {
    auto& counts = conflicts[config];
    for (const auto& m : messages) {
      if ((counts[m] += delta) <= 0) counts.erase(m);
    }
    if (counts.empty()) conflicts.erase(config);
  }
}

// The plugins `r`'s chains name and miss, of every chain.
std::set<std::string> Missing(const translate::Report& r) {
  std::set<std::string> out;
  for (const auto& [chain, plugins] : r.missing_plugins) out.insert(plugins.begin(), plugins.end());
  return out;
}

}  // namespace

void ReportIndex::Update(const std::string& agent, const translate::Report* before, const translate::Report* now) {
  auto field = [&](auto member, auto& index) {
    Move(index, before ? &(before->*member) : nullptr, now ? &(now->*member) : nullptr, agent);
  };
  field(&translate::Report::mounted_plugins, plugins_);
  field(&translate::Report::matched_chains, chains_);
  field(&translate::Report::applied_configs, configs_);
  field(&translate::Report::copied_services, copies_);
  if (!(before && now && before->missing_plugins == now->missing_plugins)) {
    const std::set<std::string> was = before ? Missing(*before) : std::set<std::string>();
    const std::set<std::string> is = now ? Missing(*now) : std::set<std::string>();
    Move(missing_, &was, &is, agent);
  }
  if (before && now && before->conflicts == now->conflicts) return;
  if (before) Count(conflicts_, *before, -1);
  if (now) Count(conflicts_, *now, +1);
}

const std::set<std::string>& ReportIndex::PluginAgents(const std::string& plugin) const { return Agents(plugins_, plugin); }

const std::set<std::string>& ReportIndex::MissingAgents(const std::string& plugin) const {
  return Agents(missing_, plugin);
}

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
