// The HTTP/1.1 side of the outbound and inbound listeners: one coroutine per downstream
// connection runs each request through the current http chain and, when a module forwards
// it, relays it to the chosen upstream with the body streamed both ways.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>

#include "agent/proxy/tap.h"
#include "agent/chains/chain_set.h"
#include "net/tls.h"
#include "net/upstream_pool.h"
#include "common/stats.h"

namespace meshplug::agent::proxy {

class Http2UpstreamPool;

// What a connection needs from the agent; everything outlives the connection.
struct ProxyEnv {
  const chains::ActiveChainSet* chains = nullptr;
  net::UpstreamPool* pool = nullptr;  // the worker's own
  Stats* stats = nullptr;
  bool inbound = false;
  // Set while the agent drains: responses close their connection.
  const std::atomic<bool>* draining = nullptr;
  // Requests and TCP connections in progress, for the drain to wait on.
  std::atomic<int64_t>* in_flight = nullptr;
  // The workload certificate's TLS contexts: inbound connections that start with a TLS
  // hello are terminated with it, and connections to endpoints with an identity are
  // mTLS. Null or empty: no certificate (plaintext only).
  const net::TlsCredentials* tls = nullptr;
  // The worker's multiplexed HTTP/2 connections, for clusters that speak HTTP/2.
  Http2UpstreamPool* h2_pool = nullptr;
  // Request summaries for `meshctl tap` (null: none).
  TapHub* tap = nullptr;
};

boost::asio::awaitable<void> ServeHttpConnection(boost::asio::ip::tcp::socket socket,
                                                 ProxyEnv env);

}  // namespace meshplug::agent::proxy
