// Bytes both ways between two connections, for everything the agent passes through as a
// byte stream: TCP services (the tcp chains), tunnels between agents, and upgraded HTTP
// connections (WebSocket). Each direction runs until its source ends and then half-closes
// the other side (a FIN, also under TLS); an error resets both; the relay ends when both
// directions have, or when no byte moved for the idle timeout (the half-close timeout once
// one direction has ended).
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <chrono>
#include <functional>
#include <string>

#include "net/stream.h"
#include "plugins/api/plugin.h"

namespace meshplug::agent::proxy {

struct RelayTimeouts {
  std::chrono::milliseconds idle;
  std::chrono::milliseconds half_close;
};

// Sees (and may change) every piece before it is written; false ends the relay, resetting
// both connections.
using PieceStep = std::function<boost::asio::awaitable<bool>(plugins::Direction, std::string&)>;

enum class RelayEnd {
  kEnded,     // both directions ended, or one broke
  kTimedOut,  // the idle or half-close timeout closed both
};

// Takes the bytes a buffer holds (read past a header: the stream's first bytes).
inline std::string TakeBuffered(boost::beast::flat_buffer& buffer) {
  std::string out(static_cast<const char*>(buffer.data().data()), buffer.size());
  buffer.consume(buffer.size());
  return out;
}

// `from_downstream` / `from_upstream`: bytes already read from either side, sent first.
// Both streams must use the calling coroutine's executor (one worker thread).
boost::asio::awaitable<RelayEnd> Relay(net::Stream& downstream, std::string from_downstream, net::Stream& upstream,
                                       std::string from_upstream, RelayTimeouts timeouts, PieceStep step = nullptr);

}  // namespace meshplug::agent::proxy
