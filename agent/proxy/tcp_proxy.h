// The tcp chains: one coroutine per accepted connection runs the chain's connect steps and,
// when a module forwards, copies bytes both ways (through the data steps) with half-close.
//
// Between agents a TCP connection travels in a tunnel: the caller's agent opens mTLS to
// the destination's inbound listener (like HTTP) and asks `CONNECT <service>:<port>`;
// the destination's agent answers 200 and runs its inbound tcp chain on the stream, which
// leads to the local app (like Istio's HBONE, on HTTP/1.1).
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "agent/proxy/http_proxy.h"
#include "net/stream.h"

namespace meshplug::agent::proxy {

// How a connection reached the tcp chain.
struct TcpArrival {
  // The agent port that accepted the connection (it selects the service).
  uint16_t listen_port = 0;
  // For an intercepted connection, where it was going (tcp-routing routes by it).
  std::optional<boost::asio::ip::tcp::endpoint> original;
  // The chain set that decided where the connection goes (null: the current one), so one
  // set decides and serves it.
  std::shared_ptr<const chains::ChainSet> chains;

  // A tunnel (inbound CONNECT): the service port it asked for (tcp-routing routes by it),
  // its caller verified by mTLS, and bytes already read after the CONNECT. The agent
  // answers 200 once the app accepted the connection, 403 when the chain refused it, 502
  // when the app did not answer.
  bool tunnel = false;
  std::string service;
  uint32_t service_port = 0;
  std::string peer_identity;
  std::string initial;
};

boost::asio::awaitable<void> ServeTcpConnection(boost::asio::ip::tcp::socket socket, ProxyEnv env,
                                                TcpArrival arrival);

// The inbound end of a tunnel, on the stream of the mTLS connection that asked for it
// (after the 200 went out).
boost::asio::awaitable<void> ServeTcpTunnel(net::Stream& stream, ProxyEnv env, TcpArrival arrival);

// meshplug_agent_tcp_tunnels_total: one tunnel's outcome at either end.
void CountTunnel(Stats& stats, bool inbound, std::string_view result);

}  // namespace meshplug::agent::proxy
