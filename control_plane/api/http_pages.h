// The control plane's HTTP pages (--http_listen), for Prometheus and operators:
//   /metrics  the control plane's own metrics, open like an agent's /stats
//   /http_sd  Prometheus HTTP service discovery: the /stats endpoint of every connected
//             agent, labelled with its namespace and workload; needs a read-only or admin
//             token (Authorization: Bearer), since it maps the mesh
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/stats.h"
#include "control_plane/security/tokens.h"
#include "control_plane/xds/agent_registry.h"
#include "meshplug/v1/admin.pb.h"
#include "net/http_server.h"

namespace meshplug::control_plane::api {

class HttpPages {
 public:
  // `agents` lists every agent of the mesh (all replicas'), as proxy status does.
  HttpPages(Stats& stats, const xds::AgentRegistry& registry,
            std::function<std::vector<v1::AgentStatus>()> agents, const security::TokenIssuer& tokens)
      : stats_(stats), registry_(registry), agents_(std::move(agents)), tokens_(tokens) {}

  net::HttpResponse Handle(const net::HttpRequest& req) const;

  // The http_sd document of `agents`: one target group per connected agent that reported
  // where its /stats is.
  static std::string ServiceDiscovery(const std::vector<v1::AgentStatus>& agents);

 private:
  Stats& stats_;
  const xds::AgentRegistry& registry_;
  std::function<std::vector<v1::AgentStatus>()> agents_;
  const security::TokenIssuer& tokens_;
};

}  // namespace meshplug::control_plane::api
