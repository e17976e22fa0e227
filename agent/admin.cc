#include "agent/admin.h"

#include <google/protobuf/util/json_util.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <sstream>

#include "agent/accept_backoff.h"
#include "agent/agent.h"
#include "common/config_dump.h"
#include "plugins/builtin/text.h"

namespace meshplug::agent {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

std::string Clusters(const ChainSet& chains) {
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

std::string Stats(Agent& agent) {
  builtin::Stats& stats = agent.state().stats;
  stats.SetGauge("meshplug_agent_chain_sets_live", {}, ChainSet::Live());
  stats.SetGauge("meshplug_agent_chain_swaps", {}, static_cast<int64_t>(agent.swaps()));
  if (const ScriptFactory* scripts = agent.scripts()) scripts->ExportStats(stats);
  std::string out = stats.RenderPrometheus();
  // The version in use, as an info metric: one series, for the active set only.
  if (std::shared_ptr<const ChainSet> chains = agent.chains().Get()) {
    out += "# TYPE meshplug_agent_snapshot_info gauge\nmeshplug_agent_snapshot_info{version=" +
           builtin::JsonQuote(chains->version()) + "} 1\n";
  }
  return out;
}

http::response<http::string_body> Handle(const http::request<http::string_body>& req,
                                         Agent& agent) {
  auto reply = [&](http::status status, std::string body, std::string type = "text/plain") {
    http::response<http::string_body> res{status, req.version()};
    res.set(http::field::content_type, type);
    res.body() = std::move(body);
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    return res;
  };
  std::string_view path = req.target().substr(0, req.target().find('?'));
  std::shared_ptr<const ChainSet> chains = agent.chains().Get();
  if (path == "/ready") {
    if (agent.draining()) return reply(http::status::service_unavailable, "draining\n");
    if (!chains) return reply(http::status::service_unavailable, "no configuration yet\n");
    return reply(http::status::ok, "ready\n");
  }
  if (path == "/stats" || path == "/stats/prometheus") {
    return reply(http::status::ok, Stats(agent), "text/plain; version=0.0.4");
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

net::awaitable<void> ServeAdminConnection(tcp::socket socket, Agent& agent) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  while (true) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(64 * 1024);
    boost::system::error_code ec;
    stream.expires_after(std::chrono::seconds(30));
    co_await http::async_read(stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
    if (ec) break;
    http::response<http::string_body> res = Handle(parser.get(), agent);
    co_await http::async_write(stream, res, net::redirect_error(net::use_awaitable, ec));
    if (ec || !res.keep_alive()) break;
  }
  boost::system::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

}  // namespace

std::string ConfigDump(const ChainSet& chains) { return ConfigDumpJson(chains.snapshot()); }

void ServeAdmin(net::io_context& context, std::shared_ptr<tcp::acceptor> acceptor, Agent& agent) {
  net::co_spawn(
      context,
      [&context, acceptor, &agent]() -> net::awaitable<void> {
        AcceptBackoff backoff;
        while (acceptor->is_open()) {
          boost::system::error_code ec;
          tcp::socket socket =
              co_await acceptor->async_accept(net::redirect_error(net::use_awaitable, ec));
          if (ec == net::error::operation_aborted) break;
          if (ec) {
            co_await backoff.AfterError();
            continue;
          }
          backoff.AfterSuccess();
          net::co_spawn(context, ServeAdminConnection(std::move(socket), agent), net::detached);
        }
      },
      net::detached);
}

}  // namespace meshplug::agent
