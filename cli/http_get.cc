#include "cli/http_get.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include "common/strings.h"

namespace meshplug::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

absl::StatusOr<std::string> HttpGet(const std::string& host_port, const std::string& target,
                                    std::chrono::milliseconds timeout) {
  const size_t colon = host_port.rfind(':');
  if (colon == std::string::npos) return absl::InvalidArgumentError(Cat("\"", host_port, "\" is not host:port"));
  std::string host = host_port.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  const std::string port = host_port.substr(colon + 1);

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

std::string UrlEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace meshplug::cli
