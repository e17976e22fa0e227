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

net::HttpResponse HttpPages::Handle(const net::HttpRequest& req) const {
  const std::string_view path = req.target().substr(0, req.target().find('?'));
  if (req.method() != http::verb::get && req.method() != http::verb::head) {
    return net::Reply(req, http::status::method_not_allowed, "use GET\n");
  }
  if (path == "/metrics") {
    stats_.SetGauge("meshplug_cp_agents_connected", {}, static_cast<int64_t>(registry_.ConnectedCount()));
    return net::Reply(req, http::status::ok, stats_.RenderPrometheus(), "text/plain; version=0.0.4");
  }
  if (path == "/http_sd") {
    const std::string_view token = net::BearerToken(req);
    if (token.empty()) {
      return net::Unauthorized(req, "/http_sd needs a read-only or admin token: Authorization: Bearer <token> "
                                    "(meshctl token create --role read-only)\n");
    }
    absl::StatusOr<v1::TokenClaims> claims = tokens_.Verify(token);
    if (!claims.ok()) return net::Unauthorized(req, Cat(claims.status().message(), "\n"));
    absl::StatusOr<security::Role> role = security::ParseRole(claims->role());
    if (!role.ok() || (*role != security::Role::kAdmin && *role != security::Role::kReadOnly)) {
      return net::Reply(req, http::status::forbidden,
                        Cat("a ", claims->role(), " token cannot read /http_sd: use a read-only or admin token\n"));
    }
    return net::Reply(req, http::status::ok, ServiceDiscovery(agents_()), "application/json");
  }
  return net::Reply(req, http::status::not_found, "control plane: /metrics /http_sd\n");
}

}  // namespace meshplug::control_plane::api
