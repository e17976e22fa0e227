// The source and destination labels of the golden metrics, shared by the metrics module
// (HTTP) and the agent's TCP relay.
//
// Outbound, the source is this workload and the destination the routed service and the
// endpoint's workload. Inbound, the destination is this workload and the source the
// namespace and service account of the caller's verified certificate (empty without mTLS).
// Every value comes from the mesh's configuration or certificates, never from the traffic
// itself, so series stay bounded by the mesh's size (docs/observability.md).
#pragma once

#include <optional>
#include <string_view>
#include <utility>

#include "common/spiffe.h"
#include "common/stats.h"
#include "plugins/api/plugin.h"

namespace meshplug::plugins {

// ("name", "namespace") of "name.namespace".
inline std::pair<std::string_view, std::string_view> SplitDotted(std::string_view dotted) {
  const size_t dot = dotted.find('.');
  if (dot == std::string_view::npos) return {dotted, {}};
  return {dotted.substr(0, dot), dotted.substr(dot + 1)};
}

// Replaces `labels` with direction, src_* and dst_* for traffic to `service`
// ("name.namespace", empty when unrouted). The views point into the arguments.
inline void SetTrafficLabels(Stats::Labels& labels, bool inbound, const WorkloadIdentity* workload,
                             std::string_view service, std::string_view peer_identity,
                             const std::optional<UpstreamTarget>& upstream) {
  static const WorkloadIdentity kNone;
  const WorkloadIdentity& self = workload ? *workload : kNone;
  const auto [dst_service, dst_namespace] = SplitDotted(service);
  const std::string_view dst_workload =
      inbound ? std::string_view(self.name) : SplitDotted(upstream ? upstream->workload : "").first;
  labels.assign({{"direction", inbound ? "inbound" : "outbound"},
                 {"src_namespace", inbound ? SpiffeNamespace(peer_identity) : self.ns},
                 {"src_workload", inbound ? std::string_view() : self.name},
                 {"src_service_account", inbound ? SpiffeServiceAccount(peer_identity) : self.service_account},
                 {"dst_namespace", dst_namespace},
                 {"dst_service", dst_service},
                 {"dst_workload", dst_workload}});
}

}  // namespace meshplug::plugins
