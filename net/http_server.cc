#include "net/http_server.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/http/parser.hpp>
#include <chrono>

#include "common/strings.h"
#include "net/accept_loop.h"
#include "net/read_http.h"

namespace meshplug::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// The last parameter, the connection's slot in the listener's limit, lives in the
// coroutine frame until the connection ends.
struct Pages {
  HttpHandler handler;
  std::map<std::string, HttpStreamPage, std::less<>> streams;
};

asio::awaitable<void> ServeConnection(tcp::socket socket, std::shared_ptr<const Pages> pages, std::shared_ptr<void>) {
  boost::system::error_code peer_ec;
  const tcp::endpoint remote = socket.remote_endpoint(peer_ec);
  const std::string peer = peer_ec ? "unknown" : remote.address().to_string() + ":" + std::to_string(remote.port());
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  while (true) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(64 * 1024);
    boost::system::error_code ec;
    stream.expires_after(std::chrono::seconds(30));  // the response's write too
    co_await ReadHttp(stream, buffer, parser, ParseUntil::kMessageDone, std::nullopt, ec);
    if (ec) break;
    const std::string_view target = parser.get().target();
    if (auto page = pages->streams.find(target.substr(0, target.find('?'))); page != pages->streams.end()) {
      stream.expires_never();
      co_await page->second(stream, parser.get());
      break;
    }
    HttpResponse res = pages->handler(parser.get(), peer);
    co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
    if (ec || !res.keep_alive()) break;
  }
  boost::system::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

}  // namespace

absl::StatusOr<std::shared_ptr<tcp::acceptor>> Listen(asio::io_context& context, const std::string& address,
                                                      uint16_t port) {
  boost::system::error_code ec;
  const asio::ip::address ip = asio::ip::make_address(address, ec);
  if (ec) return absl::InvalidArgumentError("bad listen address \"" + address + "\"");
  auto acceptor = std::make_shared<tcp::acceptor>(context);
  const tcp::endpoint endpoint(ip, port);
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return absl::UnavailableError("cannot listen on " + address + ":" + std::to_string(port) + ": " + ec.message());
  return acceptor;
}

absl::StatusOr<std::shared_ptr<tcp::acceptor>> ListenOn(asio::io_context& context, const std::string& host_port,
                                                        std::string_view flag) {
  const std::optional<HostAndPort> split = SplitHostPort(host_port);
  unsigned long port = 0;  // 0: any free port
  if (!split || !ParseNumber(split->port, port) || port > 65535) {
    return absl::InvalidArgumentError(std::string(flag) + ": \"" + host_port + "\" is not IP:port");
  }
  auto acceptor = Listen(context, split->host, static_cast<uint16_t>(port));
  if (!acceptor.ok()) return absl::Status(acceptor.status().code(), std::string(flag) + ": " + std::string(acceptor.status().message()));
  return acceptor;
}

void ServeHttp(asio::io_context& context, std::shared_ptr<tcp::acceptor> acceptor,
               std::shared_ptr<ConnectionLimit> limit, HttpHandler handler,
               std::map<std::string, HttpStreamPage, std::less<>> streams) {
  auto pick = [&context]() -> asio::io_context& { return context; };
  auto serve = [&context, pages = std::make_shared<const Pages>(Pages{std::move(handler), std::move(streams)})](
                   tcp::socket socket, std::shared_ptr<void> slot) {
    asio::co_spawn(context, ServeConnection(std::move(socket), pages, std::move(slot)), asio::detached);
  };
  asio::co_spawn(context, AcceptConnections(acceptor, std::move(limit), pick, serve), asio::detached);
}

HttpResponse Reply(const HttpRequest& req, http::status status, std::string body, std::string_view content_type) {
  HttpResponse res{status, req.version()};
  res.set(http::field::content_type, content_type);
  res.body() = std::move(body);
  res.keep_alive(req.keep_alive());
  res.prepare_payload();
  return res;
}

std::map<std::string, std::string> QueryParameters(std::string_view target) {
  std::map<std::string, std::string> out;
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return out;
  auto decode = [](std::string_view s) { return PercentDecode(s, /*plus_is_space=*/true); };
  for (std::string_view pair : Split(target.substr(q + 1), '&')) {
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    out[decode(pair.substr(0, eq))] = eq == std::string_view::npos ? "" : decode(pair.substr(eq + 1));
  }
  return out;
}

std::string_view BearerToken(const HttpRequest& req) {
  const auto it = req.find(http::field::authorization);
  if (it == req.end()) return {};
  const std::string_view value = it->value();
  constexpr std::string_view kBearer = "Bearer ";
  return value.starts_with(kBearer) ? value.substr(kBearer.size()) : std::string_view();
}

HttpResponse Unauthorized(const HttpRequest& req, std::string why) {
  HttpResponse res = Reply(req, http::status::unauthorized, std::move(why));
  res.set(http::field::www_authenticate, "Bearer");
  return res;
}

}  // namespace meshplug::net
