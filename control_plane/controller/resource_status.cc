#include "control_plane/controller/resource_status.h"

#include <algorithm>

#include "common/agent_id.h"

namespace meshplug::control_plane::controller {

using resources::Kind;

void ResourceStatus::FillStatus(resources::Object& obj) const {
  const resources::KindInfo* kind = resources::FindKindByMessage(obj.GetDescriptor()->full_name());
  if (kind == nullptr) return;
  const auto& meta = resources::Meta(obj);
  const translate::ObjectKey key{meta.namespace_(), meta.name()};
  switch (kind->id) {
    case Kind::kNamespace:
    case Kind::kService:
    case Kind::kMeshConfig:
      return;
    case Kind::kWorkload:
      static_cast<mesh::v1::Workload&>(obj).mutable_status()->set_connected(
          registry_.IsConnected(AgentId(key.first, key.second)));
      return;
    case Kind::kPlugin:
    case Kind::kPluginChain:
    case Kind::kPluginConfig:
      break;
  }
  publisher_.ReadReports([&](const Reports& reports, const std::set<std::string>& plugins) {
    switch (kind->id) {
      case Kind::kPlugin: {
        auto& status = *static_cast<mesh::v1::Plugin&>(obj).mutable_status();
        for (const auto& [agent, r] : reports) {
          if (r.mounted_plugins.count(meta.name())) status.add_agents(agent);
        }
        break;
      }
      case Kind::kPluginChain: {
        auto& pc = static_cast<mesh::v1::PluginChain&>(obj);
        auto& status = *pc.mutable_status();
        for (const auto& [agent, r] : reports) {
          if (std::find(r.matched_chains.begin(), r.matched_chains.end(), key) != r.matched_chains.end()) {
            status.add_matched_agents(agent);
          }
        }
        std::set<std::string> missing;
        for (const auto& chain : pc.spec().chains()) {
          for (const auto& p : chain.plugins()) {
            if (!plugins.count(p)) missing.insert(p);
          }
        }
        for (const auto& m : missing) status.add_missing_plugins(m);
        break;
      }
      case Kind::kPluginConfig: {
        auto& status = *static_cast<mesh::v1::PluginConfig&>(obj).mutable_status();
        std::set<std::string> conflicts;
        for (const auto& [agent, r] : reports) {
          if (r.applied_configs.count(key)) status.add_agents(agent);
          if (auto it = r.conflicts.find(key); it != r.conflicts.end()) {
            conflicts.insert(it->second.begin(), it->second.end());
          }
        }
        for (const auto& c : conflicts) status.add_conflicts(c);
        break;
      }
      default:
        break;
    }
  });
}

}  // namespace meshplug::control_plane::controller
