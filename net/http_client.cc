#include "net/http_client.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include "common/strings.h"

namespace meshplug::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

absl::StatusOr<std::string> HttpGet(const std::string& host_port, const std::string& target,
                                    std::chrono::milliseconds timeout) {
  const std::optional<HostAndPort> split = SplitHostPort(host_port);
  if (!split) return absl::InvalidArgumentError(Cat("\"", host_port, "\" is not host:port"));
  const std::string& host = split->host;
  const std::string port(split->port);

  asio::io_context io;
  beast::tcp_stream stream(io);
  asio::ip::tcp::resolver resolver(io);
  beast::flat_buffer buffer;
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, host_port);
  req.set(http::field::user_agent, "meshctl");
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 << 20);
  beast::error_code failed;
  std::string step = "resolving";
  // Each step starts the next; the stream's deadline covers them all.
  stream.expires_after(timeout);
  resolver.async_resolve(host, port, [&](beast::error_code ec, asio::ip::tcp::resolver::results_type found) {
    if (ec) return void(failed = ec);
    step = "connecting";
    stream.async_connect(found, [&](beast::error_code ec, const auto&) {
      if (ec) return void(failed = ec);
      step = "sending";
      http::async_write(stream, req, [&](beast::error_code ec, size_t) {
        if (ec) return void(failed = ec);
        step = "reading the answer";
        http::async_read(stream, buffer, parser, [&](beast::error_code ec, size_t) { failed = ec; });
      });
    });
  });
  io.run_for(timeout + std::chrono::seconds(1));
  if (!io.stopped()) failed = beast::error::timeout;
  if (failed) return absl::UnavailableError(Cat("GET http://", host_port, target, ": ", step, ": ", failed.message()));
  if (parser.get().result() != http::status::ok) {
    return absl::UnavailableError(Cat("GET http://", host_port, target, ": ", parser.get().result_int(), " ",
                                      Truncated(parser.get().body(), 200)));
  }
  return std::move(parser.get().body());
}

absl::Status HttpStreamLines(const std::string& host_port, const std::string& target, const std::string& bearer,
                             const std::function<void(std::string_view line)>& on_line,
                             std::chrono::milliseconds connect_timeout) {
  constexpr size_t kMaxLine = 1 << 20;
  const std::optional<HostAndPort> split = SplitHostPort(host_port);
  if (!split) return absl::InvalidArgumentError(Cat("\"", host_port, "\" is not host:port"));
  const std::string& host = split->host;
  asio::io_context io;
  absl::Status result;
  auto stream_lines = [&]() -> asio::awaitable<void> {
    beast::tcp_stream stream(io);
    beast::error_code ec;
    auto failed = [&](std::string_view step) {
      result = absl::UnavailableError(Cat("GET http://", host_port, target, ": ", step, ": ", ec.message()));
    };
    asio::ip::tcp::resolver resolver(io);
    stream.expires_after(connect_timeout);
    auto found = co_await resolver.async_resolve(host, std::string(split->port),
                                                 asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return failed("resolving");
    co_await stream.async_connect(found, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return failed("connecting");
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, host_port);
    req.set(http::field::authorization, "Bearer " + bearer);
    co_await http::async_write(stream, req, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return failed("sending");
    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(boost::none);
    co_await http::async_read_header(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return failed("reading the answer");
    stream.expires_never();
    const bool ok = parser.get().result() == http::status::ok;
    std::string pending;
    char chunk[16 * 1024];
    while (!parser.is_done()) {
      parser.get().body().data = chunk;
      parser.get().body().size = sizeof chunk;
      // read_some: a line is shown when it arrives, not when a buffer fills.
      co_await http::async_read_some(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
      if (ec == http::error::need_buffer) ec = {};
      pending.append(chunk, sizeof chunk - parser.get().body().size);
      if (pending.size() > kMaxLine) {
        result = absl::OutOfRangeError(Cat("GET http://", host_port, target, ": a line longer than ", kMaxLine, " bytes"));
        co_return;
      }
      for (size_t nl; ok && (nl = pending.find('\n')) != std::string::npos; pending.erase(0, nl + 1)) {
        on_line(std::string_view(pending).substr(0, nl));
      }
      if (ec) break;
    }
    if (!ok) {
      result = absl::UnavailableError(Cat("GET http://", host_port, target, ": ", parser.get().result_int(), " ",
                                          Truncated(pending, 300)));
    } else if (ec && ec != http::error::end_of_stream && ec != asio::error::eof) {
      failed("reading");
    }
  };
  asio::co_spawn(io, stream_lines(), asio::detached);
  io.run();
  return result;
}

std::string UrlEncode(std::string_view text) {
  return PercentEncode(text, IsUriUnreserved);
}

}  // namespace meshplug::net
