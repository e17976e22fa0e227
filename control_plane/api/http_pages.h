// The control plane's HTTP pages (--http_listen), for Prometheus and operators:
//   /          the dashboard (dashboard.html); it reads /api/mesh with the token that
//              `meshctl dashboard` puts after #token= in its link
//   /api/mesh  the dashboard's data (Dashboard)
//   /metrics   the control plane's own metrics, open like an agent's /stats
//   /http_sd   Prometheus HTTP service discovery: the /stats endpoint of every connected
//              agent, labelled with its namespace and workload
// /api/mesh and /http_sd map the mesh: they need a read-only or admin token
// (Authorization: Bearer), under the admin API's rule (security::Access).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/stats.h"
#include "control_plane/api/dashboard.h"
#include "control_plane/security/access.h"
#include "control_plane/xds/agent_registry.h"
#include "meshplug/v1/admin.pb.h"
#include "net/http_server.h"

namespace meshplug::control_plane::api {

class HttpPages {
 public:
  // `agents` lists every agent of the mesh (all replicas'), as proxy status does.
  // `dashboard` may be null: no / or /api/mesh.
  HttpPages(Stats& stats, const xds::AgentRegistry& registry,
            std::function<std::vector<v1::AgentStatus>()> agents, const security::Access& access,
            Dashboard* dashboard = nullptr)
      : stats_(stats), registry_(registry), agents_(std::move(agents)), access_(access), dashboard_(dashboard) {}

  // `peer` names the client in the log of a refusal.
  net::HttpResponse Handle(const net::HttpRequest& req, const std::string& peer) const;

  // The http_sd document of `agents`: one target group per connected agent that reported
  // where its /stats is.
  static std::string ServiceDiscovery(const std::vector<v1::AgentStatus>& agents);

 private:
  Stats& stats_;
  const xds::AgentRegistry& registry_;
  std::function<std::vector<v1::AgentStatus>()> agents_;
  const security::Access& access_;
  Dashboard* const dashboard_;
};

}  // namespace meshplug::control_plane::api
