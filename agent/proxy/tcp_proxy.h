// The tcp chains: one coroutine per accepted connection runs the chain's connect steps and,
// when a module forwards, copies bytes both ways (through the data steps) with half-close.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <optional>

#include "agent/proxy/http_proxy.h"

namespace meshplug::agent::proxy {

// `listen_port` is the agent port that accepted the connection (it selects the service);
// `original`, for an intercepted connection, where it was going (tcp-routing routes by it).
boost::asio::awaitable<void> ServeTcpConnection(boost::asio::ip::tcp::socket socket, ProxyEnv env,
                                                uint16_t listen_port,
                                                std::optional<boost::asio::ip::tcp::endpoint> original = std::nullopt);

}  // namespace meshplug::agent::proxy
