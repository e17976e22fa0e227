#include "control_plane/api/http_pages.h"

#include "common/strings.h"

namespace meshplug::control_plane::api {

namespace http = boost::beast::http;

std::string HttpPages::ServiceDiscovery(const std::vector<v1::AgentStatus>& agents) {
  std::string out = "[";
  for (const v1::AgentStatus& a : agents) {
    // An xDS token's client ("NS/NAME#xds") has no /stats of its own.
    const size_t slash = a.agent().find('/');
    if (!a.connected() || a.admin_address().empty() || slash == std::string::npos ||
        a.agent().ends_with(xds::kXdsClientSuffix)) {
      continue;
    }
    if (out.size() > 1) out += ',';
    out += Cat("\n  {\"targets\": [", JsonQuote(a.admin_address()), "], \"labels\": {\"__metrics_path__\": \"/stats\", ",
               "\"namespace\": ", JsonQuote(a.agent().substr(0, slash)),
               ", \"workload\": ", JsonQuote(a.agent().substr(slash + 1)), "}}");
  }
  return out + (out.size() > 1 ? "\n]\n" : "]\n");
}

net::HttpResponse HttpPages::Handle(const net::HttpRequest& req, const std::string& peer) const {
  const std::string_view path = req.target().substr(0, req.target().find('?'));
  if (req.method() != http::verb::get) {
    return net::Reply(req, http::status::method_not_allowed, "use GET\n");
  }
  if (path == "/metrics") {
    stats_.SetGauge("meshplug_cp_agents_connected", {}, static_cast<int64_t>(registry_.ConnectedCount()));
    return net::Reply(req, http::status::ok, stats_.RenderPrometheus(), "text/plain; version=0.0.4");
  }
  if (path == "/" && dashboard_ != nullptr) {
    return net::Reply(req, http::status::ok, kDashboardHtml, "text/html; charset=utf-8");
  }
  const bool mesh = path == "/api/mesh" && dashboard_ != nullptr;
  if (path == "/http_sd" || mesh) {
    if (absl::Status allowed = access_.AuthorizeBearer(net::BearerToken(req), security::Need::kRead, path, peer);
        !allowed.ok()) {
      if (allowed.code() == absl::StatusCode::kPermissionDenied) {
        return net::Reply(req, http::status::forbidden, Cat(allowed.message(), "\n"));
      }
      return net::Unauthorized(req, Cat(allowed.message(), "\n"));
    }
    if (mesh) return net::Reply(req, http::status::ok, dashboard_->MeshJson(), "application/json");
    return net::Reply(req, http::status::ok, ServiceDiscovery(agents_()), "application/json");
  }
  return net::Reply(req, http::status::not_found, "control plane: / /api/mesh /metrics /http_sd\n");
}

}  // namespace meshplug::control_plane::api
