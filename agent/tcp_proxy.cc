#include "agent/tcp_proxy.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <exception>

#include "agent/in_flight.h"
#include "plugins/builtin/builtins.h"
#include "plugins/builtin/text.h"

namespace meshplug::agent {
namespace {

using boost::asio::awaitable;
using plugins::Direction;
using plugins::TcpContext;
using plugins::Verdict;
using tcp = boost::asio::ip::tcp;
namespace net = boost::asio;

auto Ec(boost::system::error_code& ec) { return net::redirect_error(net::use_awaitable, ec); }

class TcpSession {
 public:
  TcpSession(tcp::socket socket, ProxyEnv env) : downstream_(std::move(socket)), env_(env) {}

  awaitable<void> Run(uint16_t listen_port) {
    chains_ = env_.chains->Get();
    if (!chains_) co_return;
    chain_ = &chains_->tcp(env_.inbound);
    boost::system::error_code ec;
    tcp::endpoint peer = downstream_.remote_endpoint(ec);
    ctx_.peer = builtin::Cat(peer.address().to_string(), ":", peer.port());
    ctx_.workload = &chains_->workload();
    ctx_.configs = &chains_->mesh();
    ctx_.shared.emplace(builtin::kListenPortKey, std::to_string(listen_port));

    Verdict v = co_await Connect();
    if (v.kind == Verdict::Kind::kForward && ctx_.upstream) {
      co_await Proxy();
    } else if (!v.response.body.empty()) {
      co_await net::async_write(downstream_, net::buffer(v.response.body), Ec(ec));
    }
    for (size_t i = 0; i < ran_; ++i) (*chain_)[i].plugin->OnClose(ctx_);
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
    const builtin::ClusterView* cluster = chains_->mesh().FindCluster(ctx_.upstream->cluster);
    auto timeout = cluster ? builtin::DurationOr(cluster->config.connect_timeout(),
                                                 cluster->config.has_connect_timeout(),
                                                 chains_->limits().connect_timeout)
                           : chains_->limits().connect_timeout;
    beast::tcp_stream connecting(downstream_.get_executor());
    connecting.expires_after(timeout);
    boost::system::error_code ec;
    auto address = net::ip::make_address(ctx_.upstream->host, ec);
    if (!ec) {
      co_await connecting.async_connect(tcp::endpoint(address, ctx_.upstream->port), Ec(ec));
    }
    if (ec) {
      env_.stats->Count("meshplug_upstream_connect_failures_total",
                        {{"cluster", ctx_.upstream->cluster}});
      co_return;
    }
    tcp::socket upstream = connecting.release_socket();
    // Both directions at once (Boost 1.74 has no awaitable operators): the reverse pump
    // runs as a sibling coroutine on this worker and wakes `reverse_done` when it ends.
    net::steady_timer reverse_done(downstream_.get_executor(),
                                   net::steady_timer::time_point::max());
    bool reverse_finished = false;
    net::co_spawn(downstream_.get_executor(),
                  Pump(upstream, downstream_, Direction::kUpstreamToDownstream),
                  [&](std::exception_ptr) {
                    reverse_finished = true;
                    reverse_done.cancel();
                  });
    co_await Pump(downstream_, upstream, Direction::kDownstreamToUpstream);
    if (!reverse_finished) co_await reverse_done.async_wait(Ec(ec));
  }

  // Copies `from` to `to` until `from` ends, then half-closes `to`. An error or a Respond
  // from a data step closes both.
  awaitable<void> Pump(tcp::socket& from, tcp::socket& to, Direction direction) {
    std::string data;
    boost::system::error_code ec;
    while (true) {
      data.resize(kPieceBytes);
      size_t n = co_await from.async_read_some(net::buffer(data), Ec(ec));
      if (ec) break;
      data.resize(n);
      if ((co_await DataSteps(direction, data)).kind == Verdict::Kind::kRespond) {
        ec = net::error::operation_aborted;
        break;
      }
      co_await net::async_write(to, net::buffer(data), Ec(ec));
      if (ec) break;
    }
    boost::system::error_code ignored;
    if (ec == net::error::eof) {
      to.shutdown(tcp::socket::shutdown_send, ignored);
    } else {
      from.close(ignored);
      to.close(ignored);
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

  tcp::socket downstream_;
  ProxyEnv env_;
  std::shared_ptr<const ChainSet> chains_;
  const TcpChain* chain_ = nullptr;
  TcpContext ctx_;
  size_t ran_ = 0;
};

}  // namespace

awaitable<void> ServeTcpConnection(tcp::socket socket, ProxyEnv env, uint16_t listen_port) {
  InFlight guard(env.in_flight);
  TcpSession session(std::move(socket), env);
  co_await session.Run(listen_port);
}

}  // namespace meshplug::agent
