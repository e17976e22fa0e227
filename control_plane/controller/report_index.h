// The agents' translation reports turned around: per Plugin, PluginChain and PluginConfig,
// the agents that run (or miss), match or apply it and the conflicts reported for it; per
// destination Service, the agents that hold their own copy of it. Kept up to date
// as reports change, so a resource's status costs its own agents, not a scan of every
// agent's report (10,000 agents × every `get`).
#pragma once

#include <map>
#include <set>
#include <string>

#include "control_plane/translate/translate.h"

namespace meshplug::control_plane::controller {

class ReportIndex {
 public:
  // `agent`'s report is now `now` (nullptr: the agent is gone); `before` was its last.
  void Update(const std::string& agent, const translate::Report* before, const translate::Report* now);

  const std::set<std::string>& PluginAgents(const std::string& plugin) const;
  // The agents, as last translated, one of whose chains named `plugin` when it did not
  // exist: creating it must translate them (ChangeImpact).
  const std::set<std::string>& MissingAgents(const std::string& plugin) const;
  const std::set<std::string>& ChainAgents(const translate::ObjectKey& chain) const;
  const std::set<std::string>& ConfigAgents(const translate::ObjectKey& config) const;
  // The conflict messages any agent's translation reported for `config`.
  std::set<std::string> ConfigConflicts(const translate::ObjectKey& config) const;
  // Destination Service → the agents holding their own copy of it (Report::copied_services).
  const std::map<std::string, std::set<std::string>>& Copies() const { return copies_; }

 private:
  std::map<std::string, std::set<std::string>> plugins_;
  std::map<std::string, std::set<std::string>> missing_;
  std::map<translate::ObjectKey, std::set<std::string>> chains_;
  std::map<translate::ObjectKey, std::set<std::string>> configs_;
  std::map<std::string, std::set<std::string>> copies_;
  // config → message → how many agents reported it
  std::map<translate::ObjectKey, std::map<std::string, int>> conflicts_;
};

}  // namespace meshplug::control_plane::controller
