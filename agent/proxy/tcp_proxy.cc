#include "agent/proxy/tcp_proxy.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <chrono>
#include <exception>

#include "agent/proxy/in_flight.h"
#include "agent/proxy/relay.h"
#include "net/read_http.h"
#include "plugins/api/traffic_labels.h"
#include "common/strings.h"

namespace meshplug::agent::proxy {
namespace {

using boost::asio::awaitable;
using plugins::Direction;
using plugins::TcpContext;
using plugins::Verdict;
using tcp = boost::asio::ip::tcp;
namespace asio = boost::asio;
namespace http = boost::beast::http;

auto Ec(boost::system::error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

// The request line and Host of a tunnel to `service` ("name.namespace") port `port`.
std::string TunnelRequest(const std::string& service, uint32_t port) {
  return Cat("CONNECT ", service, ":", port, " HTTP/1.1\r\nHost: ", service, ":", port, "\r\n\r\n");
}

class TcpSession {
 public:
  TcpSession(net::Stream& downstream, ProxyEnv env) : downstream_(downstream), env_(env) {}

  awaitable<void> Run(TcpArrival arrival) {
    tunnel_ = arrival.tunnel;
    chains_ = arrival.chains ? std::move(arrival.chains) : env_.chains->Get();
    if (!chains_) co_return;
    chain_ = &chains_->tcp(env_.inbound);
    boost::system::error_code ec;
    tcp::endpoint peer = downstream_.socket().remote_endpoint(ec);
    ctx_.peer = Cat(peer.address().to_string(), ":", peer.port());
    ctx_.peer_identity = std::move(arrival.peer_identity);
    ctx_.service = std::move(arrival.service);
    ctx_.service_port = arrival.service_port;
    ctx_.workload = &chains_->workload();
    ctx_.configs = &chains_->mesh().configs(env_.inbound);
    ctx_.resolver = &chains_->mesh();
    ctx_.pool = env_.pool;
    ctx_.tls = env_.tls;
    ctx_.listen_port = arrival.listen_port;
    ctx_.original = arrival.original;

    Verdict v = co_await Connect();
    if (v.kind == Verdict::Kind::kForward && ctx_.upstream) {
      co_await Proxy(std::move(arrival.initial));
    } else if (tunnel_) {
      CountTunnel(*env_.stats, true, "refused by chain");
      co_await AnswerTunnel("403 Forbidden", v.response.body);
    } else if (!v.response.body.empty()) {
      co_await asio::async_write(downstream_, asio::buffer(v.response.body), Ec(ec));
    }
    for (size_t i = 0; i < ran_; ++i) {
      try {
        (*chain_)[i].plugin->OnClose(ctx_);
      } catch (...) {
        env_.stats->Count("meshplug_plugin_errors_total", {{"plugin", (*chain_)[i].name}});
      }
    }
  }

 private:
  // The chain's connect steps up to the first Forward or Respond.
  awaitable<Verdict> Connect() {
    for (const auto& entry : *chain_) {
      ++ran_;
      try {
        Verdict v = co_await entry.plugin->OnConnect(ctx_);
        if (v.kind != Verdict::Kind::kContinue) co_return v;
      } catch (const std::exception&) {
        env_.stats->Count("meshplug_plugin_errors_total", {{"plugin", entry.name}});
        co_return Verdict::Respond(0);
      }
    }
    co_return Verdict::Respond(0);
  }

  // `initial`: bytes from the downstream already read.
  awaitable<void> Proxy(std::string initial) {
    const Limits& limits = chains_->limits();
    const routing::ClusterView* cluster = chains_->mesh().FindCluster(ctx_.upstream->cluster);
    auto timeout = cluster ? routing::DurationOr(cluster->config.connect_timeout(),
                                                 cluster->config.has_connect_timeout(),
                                                 limits.connect_timeout)
                           : limits.connect_timeout;
    // An agent in front of the endpoint (it has an identity): through a tunnel, mTLS.
    std::string identity;
    if (cluster) {
      const std::optional<size_t> i = cluster->lb->IndexOf(ctx_.upstream->host, ctx_.upstream->port);
      if (i) identity = cluster->lb->endpoint(*i).identity();
    }
    boost::system::error_code ec;
    // Not `c ? co_await a : co_await b`: GCC 12 miscompiles co_await in a conditional.
    std::unique_ptr<net::UpstreamConnection> connection;
    if (identity.empty()) {
      connection = co_await env_.pool->Connect(ctx_.upstream->host, ctx_.upstream->port, timeout, ec);
    } else {
      connection = co_await OpenTunnel(identity, timeout);
    }
    if (!connection) {
      env_.stats->Count("meshplug_upstream_connect_failures_total",
                        {{"cluster", ctx_.upstream->cluster}});
      if (tunnel_) {
        CountTunnel(*env_.stats, true, "app unreachable");
        co_await AnswerTunnel("502 Bad Gateway", "the app did not accept the connection\n");
      }
      co_return;
    }
    if (tunnel_) {
      CountTunnel(*env_.stats, true, "ok");
      const bool ok = co_await AnswerTunnel("200 OK", "");
      if (!ok) co_return;
    }
    plugins::SetTrafficLabels(labels_, env_.inbound, ctx_);
    env_.stats->Count("meshplug_tcp_connections_total", labels_);
    // What the tunnel's answer brought after its header is the app's first bytes.
    std::string early = TakeBuffered(connection->buffer);
    const RelayEnd end = co_await Relay(
        downstream_, std::move(initial), connection->stream, std::move(early),
        RelayTimeouts{limits.tcp_idle_timeout, limits.tcp_half_close_timeout},
        [this](Direction direction, std::string& data) -> awaitable<bool> {
          const bool go_on = (co_await DataSteps(direction, data)).kind != Verdict::Kind::kRespond;
          if (go_on) CountBytes(direction, data.size(), false);
          co_return go_on;
        });
    CountBytes(Direction::kDownstreamToUpstream, 0, true);
    CountBytes(Direction::kUpstreamToDownstream, 0, true);
    if (end == RelayEnd::kTimedOut) {
      env_.stats->Count("meshplug_tcp_idle_timeouts_total", {{"cluster", ctx_.upstream->cluster}});
    }
  }

  // mTLS to the endpoint's agent, which must prove `identity`, and its yes to CONNECT
  // for the routed service port, within `timeout`. nullptr when any step fails.
  awaitable<std::unique_ptr<net::UpstreamConnection>> OpenTunnel(const std::string& identity,
                                                                 std::chrono::milliseconds timeout) {
    const absl::StatusOr<net::TlsOrigination> tls = net::OriginationTo(env_.tls, identity);
    if (!tls.ok()) {
      CountOutbound("no certificate");
      co_return nullptr;
    }
    const auto deadline = Clock::now() + timeout;
    boost::system::error_code ec;
    std::unique_ptr<net::UpstreamConnection> c =
        co_await env_.pool->Connect(ctx_.upstream->host, ctx_.upstream->port, timeout, ec, &*tls);
    if (!c) {
      CountOutbound("no connection");
      co_return nullptr;
    }
    c->stream.expires_at(deadline);
    const std::string request = TunnelRequest(ctx_.service, ctx_.service_port);
    co_await asio::async_write(c->stream, asio::buffer(request), Ec(ec));
    http::response_parser<http::empty_body> answer;
    answer.skip(true);  // a 2xx to CONNECT has no body: what follows is the tunnel's
    c->buffer.max_size(kTunnelAnswerBytes + kEarlyBytes);
    if (!ec) co_await net::ReadHttp(c->stream, c->buffer, answer, net::ParseUntil::kHeaderDone, std::nullopt, ec);
    c->stream.expires_never();
    if (ec || answer.get().result_int() != 200) {
      CountOutbound(ec ? "no answer" : "refused");
      co_return nullptr;
    }
    CountOutbound("ok");
    co_return c;
  }

  void CountOutbound(std::string_view result) { CountTunnel(*env_.stats, false, result); }

  // The inbound end's answer to CONNECT; false when it could not be written.
  awaitable<bool> AnswerTunnel(std::string_view status, std::string_view body) {
    const std::string answer =
        status.starts_with("200") ? Cat("HTTP/1.1 ", status, "\r\n\r\n")
                                  : Cat("HTTP/1.1 ", status, "\r\nConnection: close\r\nContent-Type: text/plain\r\n"
                                        "Content-Length: ", body.size(), "\r\n\r\n", body);
    boost::system::error_code ec;
    downstream_.expires_after(chains_->limits().header_read_timeout);
    co_await asio::async_write(downstream_, asio::buffer(answer), Ec(ec));
    downstream_.expires_never();
    co_return !ec;
  }

  awaitable<Verdict> DataSteps(Direction direction, std::string& data) {
    for (size_t i = 0; i < ran_; ++i) {
      const auto& entry = (*chain_)[i];
      try {
        Verdict v = co_await entry.plugin->OnData(ctx_, direction, data);
        if (v.kind == Verdict::Kind::kRespond) co_return v;
      } catch (const std::exception&) {
        env_.stats->Count("meshplug_plugin_errors_total", {{"plugin", entry.name}});
        co_return Verdict::Respond(0);
      }
    }
    co_return Verdict::Continue();
  }

  // Adds `bytes` relayed in `direction` to its counter, which is updated once a MiB has
  // gathered and when the relay ends (`flush`), not for every piece.
  void CountBytes(Direction direction, size_t bytes, bool flush) {
    const bool from_downstream = direction == Direction::kDownstreamToUpstream;
    uint64_t& pending = unreported_[from_downstream ? 0 : 1];
    pending += bytes;
    if (pending == 0 || (!flush && pending < kBytesReportedEvery)) return;
    env_.stats->Count(from_downstream ? "meshplug_tcp_received_bytes_total" : "meshplug_tcp_sent_bytes_total",
                      labels_, pending);
    pending = 0;
  }

  static constexpr size_t kBytesReportedEvery = 1 << 20;
  static constexpr size_t kTunnelAnswerBytes = 8 * 1024;
  static constexpr size_t kEarlyBytes = 64 * 1024;
  using Clock = std::chrono::steady_clock;

  net::Stream& downstream_;
  ProxyEnv env_;
  std::shared_ptr<const chains::ChainSet> chains_;
  const chains::TcpChain* chain_ = nullptr;
  TcpContext ctx_;
  size_t ran_ = 0;
  bool tunnel_ = false;  // the inbound end of a tunnel: answers CONNECT
  Stats::Labels labels_;  // the traffic labels of the relayed connection
  uint64_t unreported_[2] = {0, 0};  // bytes from the downstream, from the upstream
};

}  // namespace

awaitable<void> ServeTcpConnection(tcp::socket socket, ProxyEnv env, TcpArrival arrival) {
  InFlight guard(env.in_flight);
  net::Stream stream(std::move(socket));
  TcpSession session(stream, env);
  co_await session.Run(std::move(arrival));
}

awaitable<void> ServeTcpTunnel(net::Stream& stream, ProxyEnv env, TcpArrival arrival) {
  TcpSession session(stream, env);
  co_await session.Run(std::move(arrival));
}

void CountTunnel(Stats& stats, bool inbound, std::string_view result) {
  stats.Count("meshplug_agent_tcp_tunnels_total", {{"direction", inbound ? "inbound" : "outbound"}, {"result", result}});
}


}  // namespace meshplug::agent::proxy
