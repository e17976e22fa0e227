#include "plugins/http_client/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <charconv>
#include <memory>

namespace meshplug::plugins::http_client {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

// async_resolve cannot be interrupted while getaddrinfo runs, so the lookup races a timer
// and a late answer lands in shared state that nobody reads any more. Assumes the
// executor runs one handler at a time (an io_context per thread, or a strand).
asio::awaitable<tcp::resolver::results_type> Resolve(const HostPort& target,
                                                     Clock::time_point deadline,
                                                     error_code& ec) {
  auto executor = co_await asio::this_coro::executor;
  struct Race {
    explicit Race(asio::any_io_executor ex) : timer(ex), resolver(ex) {}
    asio::steady_timer timer;
    tcp::resolver resolver;
    tcp::resolver::results_type results;
    error_code ec;
    bool done = false;
  };
  auto race = std::make_shared<Race>(executor);
  race->timer.expires_at(deadline);
  race->resolver.async_resolve(
      target.host, std::to_string(target.port),
      [race](error_code resolve_ec, tcp::resolver::results_type results) {
        race->ec = resolve_ec;
        race->results = std::move(results);
        race->done = true;
        race->timer.cancel();
      });
  error_code ignored;
  co_await race->timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  if (!race->done) {
    race->resolver.cancel();
    ec = beast::error::timeout;
    co_return tcp::resolver::results_type{};
  }
  ec = race->ec;
  co_return race->results;
}

asio::awaitable<tcp::resolver::results_type> Endpoints(const HostPort& target,
                                                       Clock::time_point deadline,
                                                       error_code& ec) {
  error_code not_literal;
  const auto address = asio::ip::make_address(target.host, not_literal);
  if (!not_literal) {
    co_return tcp::resolver::results_type::create(tcp::endpoint(address, target.port),
                                                  target.host, std::to_string(target.port));
  }
  co_return co_await Resolve(target, deadline, ec);
}

Result Failure(error_code ec, std::string what, const Request& request) {
  Result result;
  result.error = ec;
  result.message = ec == beast::error::timeout
                       ? what + " " + Describe(request.target) + ": timed out after " +
                             std::to_string(request.timeout.count()) + " ms"
                       : what + " " + Describe(request.target) + ": " + ec.message();
  return result;
}

}  // namespace

std::string Describe(const HostPort& target) {
  const bool v6 = target.host.find(':') != std::string::npos;
  return (v6 ? "[" + target.host + "]" : target.host) + ":" + std::to_string(target.port);
}

std::optional<HostPort> ParseHostPort(std::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  std::string_view host = text.substr(0, colon);
  const std::string_view port_text = text.substr(colon + 1);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return std::nullopt;
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return std::nullopt;  // an IPv6 literal needs brackets
  }
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 ||
      port > 65535) {
    return std::nullopt;
  }
  return HostPort{std::string(host), static_cast<uint16_t>(port)};
}

bool Result::timed_out() const { return error == beast::error::timeout; }

// GCC 12 at -O2 misreads Asio's recycling allocator for coroutine frames as a
// new/delete mismatch (a false positive); the frame is allocated and freed by Asio.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
asio::awaitable<Result> Fetch(Request request) {
  const auto deadline = Clock::now() + request.timeout;
  error_code ec;
  const auto endpoints = co_await Endpoints(request.target, deadline, ec);
  if (ec) co_return Failure(ec, "resolve", request);

  beast::tcp_stream stream(co_await asio::this_coro::executor);
  // One deadline for everything that follows: it stays armed across operations.
  stream.expires_at(deadline);
  co_await stream.async_connect(endpoints, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return Failure(ec, "connect", request);

  http::request<http::string_body> message(http::request_header<>(std::move(request.headers)),
                                           std::move(request.body));
  message.method(request.method);
  message.target(request.path);
  message.version(11);
  if (message.find(http::field::host) == message.end()) {
    message.set(http::field::host, Describe(request.target));
  }
  message.set(http::field::connection, "close");
  message.prepare_payload();
  co_await http::async_write(stream, message, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return Failure(ec, "write to", request);

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(request.max_response_body);
  // Header first: Beast 1.74 skips the Content-Length body_limit check when the header
  // and the body arrive in one read.
  co_await http::async_read_header(stream, buffer, parser,
                                   asio::redirect_error(asio::use_awaitable, ec));
  if (!ec) {
    co_await http::async_read(stream, buffer, parser,
                              asio::redirect_error(asio::use_awaitable, ec));
  }
  if (ec) co_return Failure(ec, "read from", request);

  error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  auto response = parser.release();
  Result result;
  result.response = Response{response.result_int(), std::move(response.base()),
                             std::move(response.body())};
  co_return result;
}
#pragma GCC diagnostic pop

}  // namespace meshplug::plugins::http_client
