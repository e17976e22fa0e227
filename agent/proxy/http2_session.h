// The HTTP/2 side of the outbound and inbound listeners (h2c with prior knowledge, and h2
// over TLS by ALPN), on nghttp2: each stream's request runs through the same exchange as an
// HTTP/1.1 request (same chains, plugins and upstream calls), streams concurrently on one
// connection, with flow control tied to how fast the exchange reads a request body.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <string>
#include <string_view>

#include "agent/proxy/http_proxy.h"
#include "net/stream.h"

namespace meshplug::agent::proxy {

// What an HTTP/2 client sends first (RFC 9113 §3.4).
inline constexpr std::string_view kHttp2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// Serves an HTTP/2 connection on `stream` until it ends. `initial`: the bytes already
// read, the client's preface first.
boost::asio::awaitable<void> ServeHttp2(net::Stream& stream, std::string initial, const ProxyEnv& env,
                                        std::string peer_identity);

}  // namespace meshplug::agent::proxy
