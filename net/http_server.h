// A small HTTP/1.1 server for operators' pages: the agent's admin endpoint and the control
// plane's /metrics, service discovery and dashboard. One coroutine per connection on the
// given io_context, keep-alive, 30 s to read a request, bodies up to 64 KiB, bare LFs in
// the framing refused.
#pragma once

#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "net/connection_limit.h"

namespace meshplug::net {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;
// `peer`: the client's "address:port", for logs.
using HttpHandler = std::function<HttpResponse(const HttpRequest&, const std::string& peer)>;
// A page that writes its own answer on the connection, for as long as it lasts (a live
// stream); the connection closes after it.
using HttpStreamPage =
    std::function<boost::asio::awaitable<void>(boost::beast::tcp_stream& stream, const HttpRequest& req)>;

// A listening socket on `address` (an IP literal) and `port` (0: any free port), or an
// error naming the address.
absl::StatusOr<std::shared_ptr<boost::asio::ip::tcp::acceptor>> Listen(boost::asio::io_context& context,
                                                                       const std::string& address, uint16_t port);

// Listen on "IP:port" ("[IPv6]:port"); `flag` names the setting in errors.
absl::StatusOr<std::shared_ptr<boost::asio::ip::tcp::acceptor>> ListenOn(boost::asio::io_context& context,
                                                                         const std::string& host_port,
                                                                         std::string_view flag);

// Serves requests from `acceptor` on `context` until the acceptor closes, at most `limit`
// connections at once; `streams` answers the paths it has, `handler` every other request
// (on the context's thread).
void ServeHttp(boost::asio::io_context& context, std::shared_ptr<boost::asio::ip::tcp::acceptor> acceptor,
               std::shared_ptr<ConnectionLimit> limit, HttpHandler handler,
               std::map<std::string, HttpStreamPage, std::less<>> streams = {});

// The parameters of the target's query string, percent-decoded; a repeated one keeps its
// last value.
std::map<std::string, std::string> QueryParameters(std::string_view target);

// `body` as the answer to `req`, keeping the connection open if the request allows it.
HttpResponse Reply(const HttpRequest& req, boost::beast::http::status status, std::string body,
                   std::string_view content_type = "text/plain");

// The token of `Authorization: Bearer <token>`, or "" without one.
std::string_view BearerToken(const HttpRequest& req);

// A 401 that says what is missing, with WWW-Authenticate: Bearer.
HttpResponse Unauthorized(const HttpRequest& req, std::string why);

}  // namespace meshplug::net
