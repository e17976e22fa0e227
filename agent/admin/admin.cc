#include "agent/admin/admin.h"

#include <boost/beast/http.hpp>
#include <sstream>

#include <openssl/crypto.h>

#include "common/config_dump.h"
#include "net/http_server.h"

namespace meshplug::agent::admin {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

std::string Clusters(const chains::ChainSet& chains) {
  std::ostringstream out;
  for (const auto& [name, cluster] : chains.mesh().clusters()) {
    for (size_t i = 0; i < cluster.lb->size(); ++i) {
      const v1::Endpoint& e = cluster.lb->endpoint(i);
      std::string prefix = name + "::" + e.address() + ":" + std::to_string(e.port()) + "::";
      out << prefix << "health_flags::healthy\n";
      out << prefix << "weight::" << std::max<uint32_t>(1, e.weight()) << "\n";
      out << prefix << "rq_active::" << cluster.lb->active(i) << "\n";
    }
  }
  return out.str();
}

// Whether the request carries the admin token (compared in constant time).
bool Authorized(const net::HttpRequest& req, const std::string& token) {
  const std::string_view given = net::BearerToken(req);
  return given.size() == token.size() && CRYPTO_memcmp(given.data(), token.data(), given.size()) == 0;
}

net::HttpResponse Handle(const net::HttpRequest& req, AdminTarget& agent, const std::string& token) {
  auto reply = [&](http::status status, std::string body, std::string_view type = "text/plain") {
    return net::Reply(req, status, std::move(body), type);
  };
  std::string_view path = req.target().substr(0, req.target().find('?'));
  std::shared_ptr<const chains::ChainSet> chains = agent.ActiveChainSet();
  if (path == "/ready") {
    if (agent.draining()) return reply(http::status::service_unavailable, "draining\n");
    if (!chains) return reply(http::status::service_unavailable, "no configuration yet\n");
    return reply(http::status::ok, "ready\n");
  }
  if (path == "/stats" || path == "/stats/prometheus") {
    return reply(http::status::ok, agent.RenderStats(), "text/plain; version=0.0.4");
  }
  if ((path == "/config_dump" || path == "/quitquitquit") && !Authorized(req, token)) {
    return net::Unauthorized(
        req, "this page needs the agent's admin token: Authorization: Bearer <token from --admin_token_file>\n");
  }
  if (path == "/config_dump") {
    if (!chains) return reply(http::status::service_unavailable, "no configuration yet\n");
    return reply(http::status::ok, ConfigDump(*chains), "application/json");
  }
  if (path == "/clusters") {
    return reply(http::status::ok, chains ? Clusters(*chains) : std::string());
  }
  if (path == "/quitquitquit") {
    if (req.method() != http::verb::post) {
      return reply(http::status::method_not_allowed, "use POST\n");
    }
    agent.DrainAsync();
    auto res = reply(http::status::ok, "draining\n");
    res.keep_alive(false);
    return res;
  }
  return reply(http::status::not_found,
               "admin: /config_dump /stats /ready /clusters /quitquitquit\n");
}

}  // namespace

std::string ConfigDump(const chains::ChainSet& chains) { return ConfigDumpJson(chains.snapshot()); }

void ServeAdmin(asio::io_context& context, std::shared_ptr<tcp::acceptor> acceptor,
                std::shared_ptr<net::ConnectionLimit> limit, AdminTarget& agent, std::string token) {
  net::ServeHttp(context, std::move(acceptor), std::move(limit),
                 [&agent, token = std::move(token)](const net::HttpRequest& req) { return Handle(req, agent, token); });
}

}  // namespace meshplug::agent::admin
