// The status the admin API shows with stored objects, from the publisher's last
// translations and the agent registry: a Plugin's agents, a PluginChain's matched agents
// and missing plugins, a PluginConfig's agents and conflicts, a Workload's connection.
#pragma once

#include "control_plane/api/status_view.h"
#include "control_plane/controller/publisher.h"
#include "control_plane/xds/agent_registry.h"

namespace meshplug::control_plane::controller {

class ResourceStatus final : public api::StatusView {
 public:
  ResourceStatus(const Publisher& publisher, const xds::AgentRegistry& registry)
      : publisher_(publisher), registry_(registry) {}
  void FillStatus(resources::Object& obj) const override;

 private:
  const Publisher& publisher_;
  const xds::AgentRegistry& registry_;
};

}  // namespace meshplug::control_plane::controller
