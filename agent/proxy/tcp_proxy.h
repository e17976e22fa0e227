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
#include <optional>
#include <string>

#include "agent/proxy/http_proxy.h"
#include "net/stream.h"

namespace meshplug::agent::proxy {

// How a connection reached the tcp chain.
struct TcpArrival {
  // The agent port that accepted the connection (it selects the service).
  uint16_t listen_port = 0;
  // For an intercepted connection, where it was going (tcp-routing routes by it); for a
  // tunnel, the local app port of the service port it asked for.
  std::optional<boost::asio::ip::tcp::endpoint> original;
  // A tunnel's caller, verified by mTLS.
  std::string peer_identity;
  // Bytes already read from the downstream that belong to the stream.
  std::string initial;
};

boost::asio::awaitable<void> ServeTcpConnection(boost::asio::ip::tcp::socket socket, ProxyEnv env,
                                                TcpArrival arrival);

// The inbound end of a tunnel, on the stream of the mTLS connection that asked for it
// (after the 200 went out).
boost::asio::awaitable<void> ServeTcpTunnel(net::Stream& stream, ProxyEnv env, TcpArrival arrival);

// The request line and Host of a tunnel to `service` ("name.namespace") port `port`.
std::string TunnelRequest(const std::string& service, uint32_t port);

}  // namespace meshplug::agent::proxy
