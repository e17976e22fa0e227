#include "control_plane/controller/resource_status.h"

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
    case Kind::kHTTPRoute:
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
  publisher_.ReadIndex([&](const ReportIndex& index, const std::set<std::string>& plugins) {
    switch (kind->id) {
      case Kind::kPlugin: {
        auto& status = *static_cast<mesh::v1::Plugin&>(obj).mutable_status();
        for (const auto& agent : index.PluginAgents(meta.name())) status.add_agents(agent);
        break;
      }
      case Kind::kPluginChain: {
        auto& pc = static_cast<mesh::v1::PluginChain&>(obj);
        auto& status = *pc.mutable_status();
        for (const auto& agent : index.ChainAgents(key)) status.add_matched_agents(agent);
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
        for (const auto& agent : index.ConfigAgents(key)) status.add_agents(agent);
        for (const auto& c : index.ConfigConflicts(key)) status.add_conflicts(c);
        break;
      }
      default:
        break;
    }
  });
}

}  // namespace meshplug::control_plane::controller
