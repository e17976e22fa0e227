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

// Who talks to whom. The views point into the arguments of PartiesOf.
struct TrafficParties {
  std::string_view src_namespace, src_workload, src_service_account;
  std::string_view dst_namespace, dst_service, dst_workload;
};

// The parties of a request's or a connection's traffic (an HttpContext or a TcpContext:
// the same fields), to ctx.service ("name.namespace", empty when unrouted).
template <typename Context>
TrafficParties PartiesOf(bool inbound, const Context& ctx) {
  static const WorkloadIdentity kNone;
  const WorkloadIdentity& self = ctx.workload ? *ctx.workload : kNone;
  const auto [dst_service, dst_namespace] = SplitDotted(ctx.service);
  TrafficParties p;
  p.dst_namespace = dst_namespace;
  p.dst_service = dst_service;
  if (inbound) {
    p.src_namespace = SpiffeNamespace(ctx.peer_identity);
    p.src_service_account = SpiffeServiceAccount(ctx.peer_identity);
    p.dst_workload = self.name;
  } else {
    p.src_namespace = self.ns;
    p.src_workload = self.name;
    p.src_service_account = self.service_account;
    p.dst_workload = SplitDotted(ctx.upstream ? ctx.upstream->workload : "").first;
  }
  return p;
}

// Replaces `labels` with direction, src_* and dst_* of the parties of `ctx`.
template <typename Context>
void SetTrafficLabels(Stats::Labels& labels, bool inbound, const Context& ctx) {
  const TrafficParties p = PartiesOf(inbound, ctx);
  labels.assign({{"direction", inbound ? "inbound" : "outbound"},
                 {"src_namespace", p.src_namespace},
                 {"src_workload", p.src_workload},
                 {"src_service_account", p.src_service_account},
                 {"dst_namespace", p.dst_namespace},
                 {"dst_service", p.dst_service},
                 {"dst_workload", p.dst_workload}});
}

}  // namespace meshplug::plugins
