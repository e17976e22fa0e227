#pragma once

#include <string>

#include "absl/status/status.h"
#include "meshplug/v1/resources.pb.h"

namespace meshplug::control_plane::xds {

// What the server tells the rest of the control plane about agents coming and going.
class AgentLifecycle {
 public:
  virtual ~AgentLifecycle() = default;
  // The stream's node named this workload; an error ends the stream with it.
  virtual absl::Status Register(const mesh::v1::Workload& workload) = 0;
  // The agent's last stream ended.
  virtual void Disconnected(const std::string& agent) = 0;
};

}  // namespace meshplug::control_plane::xds
