#include "agent/admin/admin.h"

#include <google/protobuf/util/json_util.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <sstream>

#include <openssl/crypto.h>

#include "net/accept_loop.h"
#include "net/strict_line_endings.h"
#include "common/config_dump.h"
#include "common/strings.h"

namespace meshplug::agent::admin {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
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
bool Authorized(const http::request<http::string_body>& req, const std::string& token) {
  const auto it = req.find(http::field::authorization);
  if (it == req.end()) return false;
  const std::string expected = "Bearer " + token;
  const std::string_view given = it->value();
  return given.size() == expected.size() && CRYPTO_memcmp(given.data(), expected.data(), given.size()) == 0;
}

http::response<http::string_body> Handle(const http::request<http::string_body>& req,
                                         AdminTarget& agent, const std::string& token) {
  auto reply = [&](http::status status, std::string body, std::string type = "text/plain") {
    http::response<http::string_body> res{status, req.version()};
    res.set(http::field::content_type, type);
    res.body() = std::move(body);
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    return res;
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
    auto res = reply(http::status::unauthorized,
                     "this page needs the agent's admin token: Authorization: Bearer <token from --admin_token_file>\n");
    res.set(http::field::www_authenticate, "Bearer");
    return res;
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

// The last parameter, the connection's slot in the listener's limit, lives in the
// coroutine frame until the connection ends.
asio::awaitable<void> ServeAdminConnection(tcp::socket socket, AdminTarget& agent,
                                           std::shared_ptr<const std::string> token, std::shared_ptr<void>) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  while (true) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(64 * 1024);
    boost::system::error_code ec;
    stream.expires_after(std::chrono::seconds(30));
    net::StrictLineEndings strict(stream, buffer);
    co_await http::async_read(strict, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
    http::response<http::string_body> res = Handle(parser.get(), agent, *token);
    co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
    if (ec || !res.keep_alive()) break;
  }
  boost::system::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

}  // namespace

std::string ConfigDump(const chains::ChainSet& chains) { return ConfigDumpJson(chains.snapshot()); }

void ServeAdmin(asio::io_context& context, std::shared_ptr<tcp::acceptor> acceptor,
                std::shared_ptr<net::ConnectionLimit> limit, AdminTarget& agent, std::string token) {
  auto pick = [&context]() -> asio::io_context& { return context; };
  auto serve = [&context, &agent, token = std::make_shared<const std::string>(std::move(token))](
                   tcp::socket socket, std::shared_ptr<void> slot) {
    asio::co_spawn(context, ServeAdminConnection(std::move(socket), agent, token, std::move(slot)), asio::detached);
  };
  asio::co_spawn(context, net::AcceptConnections(acceptor, std::move(limit), pick, serve), asio::detached);
}

}  // namespace meshplug::agent::admin
