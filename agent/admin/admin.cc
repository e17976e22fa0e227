#include "agent/admin/admin.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <optional>
#include <sstream>

#include <openssl/crypto.h>

#include "common/config_dump.h"
#include "common/strings.h"
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
               "admin: /config_dump /stats /ready /clusters /tap /quitquitquit\n");
}

// What /tap?path=PREFIX&method=M&sample=0.5&max_rps=100&seconds=60 asks for, or the
// answer that refuses it.
struct TapAsk {
  proxy::TapFilter filter;
  uint64_t seconds = 60;  // up to an hour
  std::optional<net::HttpResponse> refusal;
};

TapAsk ReadTapAsk(const net::HttpRequest& req, const std::string& token) {
  TapAsk ask;
  if (!Authorized(req, token)) {
    ask.refusal = net::Unauthorized(
        req, "/tap needs the agent's admin token: Authorization: Bearer <token from --admin_token_file>\n");
    return ask;
  }
  for (const auto& [key, value] : net::QueryParameters(req.target())) {
    bool ok = true;
    if (key == "path") {
      ok = value.starts_with('/');
      ask.filter.path_prefix = value;
    } else if (key == "method") {
      ok = IsHttpToken(value);
      ask.filter.method = value;
    } else if (key == "sample") {
      char* end = nullptr;
      ask.filter.sample = std::strtod(value.c_str(), &end);
      ok = end != value.c_str() && *end == '\0' && ask.filter.sample > 0 && ask.filter.sample <= 1;
    } else if (key == "max_rps") {
      ok = ParseNumber(value, ask.filter.max_per_second) && ask.filter.max_per_second >= 1 &&
           ask.filter.max_per_second <= proxy::TapHub::kMaxPerSecond;
    } else if (key == "seconds") {
      ok = ParseNumber(value, ask.seconds) && ask.seconds >= 1 && ask.seconds <= 3600;
    } else {
      ok = false;
    }
    if (!ok) {
      ask.refusal = net::Reply(
          req, http::status::bad_request,
          Cat("/tap: ", key, "=", Truncated(value, 64), " is not valid (path=/PREFIX method=GET sample=(0,1] max_rps=1..",
              proxy::TapHub::kMaxPerSecond, " seconds=1..3600)\n"));
      return ask;
    }
  }
  return ask;
}

// A subscription that ends however its coroutine ends, its io_context's destruction included.
class TapSubscription {
 public:
  TapSubscription(proxy::TapHub& hub, const proxy::TapFilter& filter, const asio::any_io_executor& executor)
      : hub_(hub), subscription_(hub.Subscribe(filter, executor)) {}
  ~TapSubscription() { hub_.Unsubscribe(subscription_); }
  const std::shared_ptr<proxy::TapHub::Subscription>& get() const { return subscription_; }

 private:
  proxy::TapHub& hub_;
  std::shared_ptr<proxy::TapHub::Subscription> subscription_;
};

// The summaries as JSON lines while they happen, until the ask's seconds are over or the
// client goes away.
asio::awaitable<void> ServeTap(boost::beast::tcp_stream& stream, const net::HttpRequest& req, AdminTarget& agent,
                               const std::string& token) {
  boost::system::error_code ec;
  TapAsk ask = ReadTapAsk(req, token);
  if (ask.refusal) {
    ask.refusal->keep_alive(false);
    co_await http::async_write(stream, *ask.refusal, asio::redirect_error(asio::use_awaitable, ec));
    co_return;
  }
  const std::string header =
      "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n";
  co_await asio::async_write(stream, asio::buffer(header), asio::redirect_error(asio::use_awaitable, ec));
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  const TapSubscription tap(agent.tap(), ask.filter, executor);
  const std::shared_ptr<proxy::TapHub::Subscription>& subscription = tap.get();
  // The client sends nothing more: the socket turning readable means it went away.
  auto gone = std::make_shared<bool>(false);
  stream.socket().async_wait(asio::ip::tcp::socket::wait_read, [gone, subscription](boost::system::error_code) {
    *gone = true;
    subscription->wake().cancel();
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(ask.seconds);
  stream.expires_at(deadline);  // a client that stops reading cannot hold the tap open
  while (!ec && !*gone && std::chrono::steady_clock::now() < deadline) {
    std::string lines;
    for (std::string& line : subscription->Take()) lines += std::move(line) + "\n";
    if (!lines.empty()) {
      co_await asio::async_write(stream, asio::buffer(lines), asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    // A summary's arrival cancels the wait (TapHub posts to this executor).
    subscription->wake().expires_at(deadline);
    boost::system::error_code waited;
    co_await subscription->wake().async_wait(asio::redirect_error(asio::use_awaitable, waited));
  }
  stream.socket().cancel(ec);  // the wait for the client's going away
}

}  // namespace

std::string ConfigDump(const chains::ChainSet& chains) { return ConfigDumpJson(chains.snapshot()); }

void ServeAdmin(asio::io_context& context, std::shared_ptr<tcp::acceptor> acceptor,
                std::shared_ptr<net::ConnectionLimit> limit, AdminTarget& agent, std::string token) {
  auto shared_token = std::make_shared<const std::string>(std::move(token));
  net::ServeHttp(
      context, std::move(acceptor), std::move(limit),
      [&agent, shared_token](const net::HttpRequest& req, const std::string&) { return Handle(req, agent, *shared_token); },
      {{"/tap", [&agent, shared_token](boost::beast::tcp_stream& stream, const net::HttpRequest& req) {
          return ServeTap(stream, req, agent, *shared_token);
        }}});
}

}  // namespace meshplug::agent::admin
