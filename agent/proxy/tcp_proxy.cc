#include "agent/proxy/tcp_proxy.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <exception>

#include "agent/proxy/in_flight.h"
#include "common/strings.h"

namespace meshplug::agent::proxy {
namespace {

using boost::asio::awaitable;
using plugins::Direction;
using plugins::TcpContext;
using plugins::Verdict;
using tcp = boost::asio::ip::tcp;
namespace asio = boost::asio;

auto Ec(boost::system::error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

class TcpSession {
 public:
  TcpSession(tcp::socket socket, ProxyEnv env) : downstream_(std::move(socket)), env_(env) {}

  awaitable<void> Run(uint16_t listen_port, std::optional<tcp::endpoint> original) {
    chains_ = env_.chains->Get();
    if (!chains_) co_return;
    chain_ = &chains_->tcp(env_.inbound);
    boost::system::error_code ec;
    tcp::endpoint peer = downstream_.remote_endpoint(ec);
    ctx_.peer = Cat(peer.address().to_string(), ":", peer.port());
    ctx_.workload = &chains_->workload();
    ctx_.configs = &chains_->mesh().configs(env_.inbound);
    ctx_.resolver = &chains_->mesh();
    ctx_.pool = env_.pool;
    ctx_.tls = env_.tls;
    ctx_.shared.emplace(plugins::kListenPortKey, std::to_string(listen_port));
    if (original) {
      ctx_.shared.emplace(plugins::kOriginalIpKey, original->address().to_string());
      ctx_.shared.emplace(plugins::kOriginalPortKey, std::to_string(original->port()));
    }

    Verdict v = co_await Connect();
    if (v.kind == Verdict::Kind::kForward && ctx_.upstream) {
      co_await Proxy();
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

  awaitable<void> Proxy() {
    const Limits& limits = chains_->limits();
    const routing::ClusterView* cluster = chains_->mesh().FindCluster(ctx_.upstream->cluster);
    auto timeout = cluster ? routing::DurationOr(cluster->config.connect_timeout(),
                                                 cluster->config.has_connect_timeout(),
                                                 limits.connect_timeout)
                           : limits.connect_timeout;
    boost::system::error_code ec;
    // An agent is in front of that endpoint: its inbound listener speaks HTTP over mTLS,
    // and raw TCP between agents (a tunnel, with mTLS) is not built yet. Refused rather
    // than sent in plaintext to a listener that would read it as HTTP.
    if (cluster) {
      const std::optional<size_t> i = cluster->lb->IndexOf(ctx_.upstream->host, ctx_.upstream->port);
      if (i && !cluster->lb->endpoint(*i).identity().empty()) {
        env_.stats->Count("meshplug_tcp_refused_total", {{"cluster", ctx_.upstream->cluster}, {"reason", "agent endpoint"}});
        co_return;
      }
    }
    // The pool's connect: IP literals and DNS names alike.
    std::unique_ptr<net::UpstreamConnection> connection =
        co_await env_.pool->Connect(ctx_.upstream->host, ctx_.upstream->port, timeout, ec);
    if (!connection) {
      env_.stats->Count("meshplug_upstream_connect_failures_total",
                        {{"cluster", ctx_.upstream->cluster}});
      co_return;
    }
    tcp::socket upstream = connection->stream.release_socket();
    idle_timeout_ = limits.tcp_idle_timeout;
    half_close_timeout_ = limits.tcp_half_close_timeout;
    last_activity_ = Clock::now();
    // Both directions and the idle watchdog run as sibling coroutines on this worker
    // (Boost 1.74 has no awaitable operators); `all_done` wakes when the last one ends.
    auto executor = downstream_.get_executor();
    asio::steady_timer watchdog(executor);
    asio::steady_timer all_done(executor, asio::steady_timer::time_point::max());
    int running = 3;
    auto finished = [&](std::exception_ptr) {
      if (--running == 0) all_done.cancel();
    };
    asio::co_spawn(executor,
                  Pump(upstream, downstream_, Direction::kUpstreamToDownstream, watchdog),
                  finished);
    asio::co_spawn(executor,
                  Pump(downstream_, upstream, Direction::kDownstreamToUpstream, watchdog),
                  finished);
    asio::co_spawn(executor, Watch(upstream, watchdog), finished);
    if (running > 0) co_await all_done.async_wait(Ec(ec));
  }

  // Copies `from` to `to` until `from` ends, then half-closes `to`. An error or a Respond
  // from a data step closes both.
  awaitable<void> Pump(tcp::socket& from, tcp::socket& to, Direction direction,
                       asio::steady_timer& watchdog) {
    std::string data;
    boost::system::error_code ec;
    while (true) {
      data.resize(kPieceBytes);
      size_t n = co_await from.async_read_some(asio::buffer(data), Ec(ec));
      if (ec) break;
      last_activity_ = Clock::now();
      data.resize(n);
      if ((co_await DataSteps(direction, data)).kind == Verdict::Kind::kRespond) {
        ec = asio::error::operation_aborted;
        break;
      }
      co_await asio::async_write(to, asio::buffer(data), Ec(ec));
      if (ec) break;
      last_activity_ = Clock::now();
    }
    boost::system::error_code ignored;
    if (ec == asio::error::eof) {
      to.shutdown(tcp::socket::shutdown_send, ignored);
      half_closed_ = true;
      last_activity_ = Clock::now();  // the half-close timeout counts from here
    } else {
      from.close(ignored);
      to.close(ignored);
    }
    --pumps_running_;
    watchdog.cancel();  // the watchdog re-reads the state
  }

  // Closes both sockets once no byte has moved for the idle timeout, or for the
  // half-close timeout after one direction ended; returns when both pumps have ended.
  awaitable<void> Watch(tcp::socket& upstream, asio::steady_timer& timer) {
    while (pumps_running_ > 0) {
      auto deadline = last_activity_ + (half_closed_ ? half_close_timeout_ : idle_timeout_);
      if (Clock::now() >= deadline) {
        env_.stats->Count("meshplug_tcp_idle_timeouts_total", {{"cluster", ctx_.upstream->cluster}});
        boost::system::error_code ignored;
        upstream.close(ignored);
        downstream_.close(ignored);
        co_return;
      }
      timer.expires_at(deadline);
      boost::system::error_code ec;
      co_await timer.async_wait(Ec(ec));
    }
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

  static constexpr size_t kPieceBytes = 64 * 1024;
  using Clock = std::chrono::steady_clock;

  tcp::socket downstream_;
  ProxyEnv env_;
  std::shared_ptr<const chains::ChainSet> chains_;
  const chains::TcpChain* chain_ = nullptr;
  TcpContext ctx_;
  size_t ran_ = 0;
  // Proxy state shared by the pumps and the watchdog (one worker thread).
  Clock::time_point last_activity_;
  std::chrono::milliseconds idle_timeout_{0};
  std::chrono::milliseconds half_close_timeout_{0};
  int pumps_running_ = 2;
  bool half_closed_ = false;
};

}  // namespace

awaitable<void> ServeTcpConnection(tcp::socket socket, ProxyEnv env, uint16_t listen_port,
                                   std::optional<tcp::endpoint> original) {
  InFlight guard(env.in_flight);
  TcpSession session(std::move(socket), env);
  co_await session.Run(listen_port, original);
}

}  // namespace meshplug::agent::proxy
