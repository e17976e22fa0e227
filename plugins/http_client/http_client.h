// A small asynchronous HTTP/1.1 client for plugins (Lua `http_call`): one request, on a
// kept-alive connection of the worker's net::UpstreamPool when given one, else on a connection
// of its own; one deadline covers resolve, connect, write and read (and a resend).
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "net/upstream_pool.h"

namespace meshplug::plugins::http_client {

namespace http = boost::beast::http;

struct HostPort {
  std::string host;  // IP literal (IPv6 without brackets) or name
  uint16_t port = 0;
};

// Parses "host:port" or "[v6]:port". nullopt when the port is missing or not 1-65535.
std::optional<HostPort> ParseHostPort(std::string_view text);

// "host:port", with brackets around an IPv6 host.
std::string Describe(const HostPort& target);

struct Request {
  HostPort target;
  std::string method = "GET";  // a token, sent as given (methods are case-sensitive)
  std::string path = "/";
  http::fields headers;  // Content-Length and Connection are set by the client; Host too, unless given
  std::string body;
  std::chrono::milliseconds timeout{1000};  // the whole exchange, resolve included
  size_t max_response_body = 1 << 20;
  // How long the connection may then wait in the pool for the next call to host:port.
  std::chrono::milliseconds idle_timeout{30000};
  // mTLS to exactly this identity (an endpoint behind an agent); unset: plaintext.
  std::optional<net::TlsOrigination> tls;
};

struct Response {
  unsigned status = 0;
  http::fields headers;
  std::string body;
};

struct Result {
  // Unset on failure; `error` then says what failed.
  std::optional<Response> response;
  boost::system::error_code error;
  std::string message;  // e.g. "connect 127.0.0.1:8079: Connection refused"

  bool timed_out() const;
};

// Sends `request` and reads the whole response. Never throws for network errors; runs on
// the calling coroutine's executor.
//
// With a `pool` (it must belong to that executor's thread) the request asks for
// keep-alive and goes on an idle connection to host:port when there is one. The
// connection goes back to the pool only when the response was read completely, the server
// did not say `Connection: close` and nothing unread follows it. A reused connection that
// fails before any byte of the response (the server closed it as the request went out)
// is replaced by a new one and the request sent again, once, for GET, HEAD, PUT, DELETE
// and OPTIONS. Other methods are never sent twice: the call fails and the message says
// so. Without a pool: a connection of its own with `Connection: close`.
boost::asio::awaitable<Result> Fetch(Request request, net::UpstreamPool* pool = nullptr);

}  // namespace meshplug::plugins::http_client
