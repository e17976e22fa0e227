// An agent says who it is in the xDS Node of its stream's first request:
//   id: the workload name
//   metadata: {namespace, labels: {...}, service_account, address, inbound_port, app_ports: [...],
//              admin_address}
#pragma once

#include "absl/status/statusor.h"
#include "envoy/config/core/v3/base.pb.h"
#include "meshplug/v1/resources.pb.h"
#include "resources/kinds.h"

namespace meshplug::control_plane::xds {

// The Workload the node describes, or an error naming the node field that is wrong.
absl::StatusOr<mesh::v1::Workload> WorkloadFromNode(const envoy::config::core::v3::Node& node);

// "IP:port" where the agent serves its admin pages (/stats), "" when it said nothing, or
// an error naming the field: the IP must be loopback or the workload's own address, so no
// agent can send Prometheus or the dashboard to another host.
absl::StatusOr<std::string> AdminAddressFromNode(const envoy::config::core::v3::Node& node);

// "<namespace>/<name>": how the control plane names an agent.
std::string AgentId(const mesh::v1::Workload& workload);

// Marks workloads that agents registered (and that disappear after the grace period).
using resources::kRegisteredBy;

}  // namespace meshplug::control_plane::xds
