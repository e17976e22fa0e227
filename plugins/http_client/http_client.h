// A small asynchronous HTTP/1.1 client for plugins (Lua `http_call`): one request on a
// fresh connection, with one deadline covering resolve, connect, write and read.
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
  http::verb method = http::verb::get;
  std::string path = "/";
  http::fields headers;  // Content-Length and Connection are set by the client; Host too, unless given
  std::string body;
  std::chrono::milliseconds timeout{1000};  // the whole exchange, resolve included
  size_t max_response_body = 1 << 20;
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
boost::asio::awaitable<Result> Fetch(Request request);

}  // namespace meshplug::plugins::http_client
