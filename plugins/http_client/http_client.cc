#include "plugins/http_client/http_client.h"

#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/write.hpp>
#include <algorithm>
#include <charconv>
#include <limits>
#include <memory>
#include <optional>

#include "net/read_http.h"

namespace meshplug::plugins::http_client {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

// `stale`: the failure came from a reused kept-alive connection before any response byte,
// and the request was not resent because its method is not idempotent.
Result Failure(error_code ec, std::string what, const Request& request, bool stale = false) {
  Result result;
  result.error = ec;
  result.message = ec == beast::error::timeout
                       ? what + " " + Describe(request.target) + ": timed out after " +
                             std::to_string(request.timeout.count()) + " ms"
                       : what + " " + Describe(request.target) + ": " + ec.message();
  if (stale) {
    result.message += " (on a reused keep-alive connection; not resent: " +
                      request.method + " is not idempotent)";
  }
  return result;
}

// The name did not resolve (as opposed to the address refusing or not answering).
bool ResolveError(const error_code& ec) {
  return ec.category() == asio::error::get_netdb_category() ||
         ec.category() == asio::error::get_addrinfo_category();
}

std::chrono::milliseconds Left(Clock::time_point deadline) {
  return std::max(std::chrono::milliseconds(0),
                  std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()));
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
asio::awaitable<Result> Fetch(Request request, net::UpstreamPool* pool) {
  const auto deadline = Clock::now() + request.timeout;
  http::request<http::string_body> message(http::request_header<>(std::move(request.headers)),
                                           std::move(request.body));
  message.method_string(request.method);
  message.target(request.path);
  message.version(11);
  if (message.find(http::field::host) == message.end()) {
    message.set(http::field::host, Describe(request.target));
  }
  message.set(http::field::connection, pool != nullptr ? "keep-alive" : "close");
  message.prepare_payload();

  // At most twice: the second time on a new connection, after a reused one failed.
  const bool idempotent = net::Idempotent(http::string_to_verb(request.method));
  for (net::Reuse reuse = idempotent ? net::Reuse::kAsIs : net::Reuse::kChecked;; reuse = net::Reuse::kNone) {
    error_code ec;
    bool reused = false;
    std::unique_ptr<net::UpstreamConnection> connection;
    if (pool != nullptr) {
      net::Acquired acquired = pool->Acquire(request.target.host, request.target.port, Left(deadline),
                                             request.idle_timeout, reuse, ec, request.tls ? &*request.tls : nullptr);
      reused = acquired.idle != nullptr;
      connection = std::move(acquired.idle);
      if (acquired.connect) connection = co_await std::move(*acquired.connect);
    } else {
      connection = co_await net::ConnectUpstream(co_await asio::this_coro::executor, request.target.host,
                                                 request.target.port, Left(deadline), ec,
                                                 request.tls ? &*request.tls : nullptr);
    }
    if (!connection) co_return Failure(ec, ResolveError(ec) ? "resolve" : "connect", request);
    net::Stream& stream = connection->stream;
    beast::flat_buffer& buffer = connection->buffer;
    // One deadline for everything that follows: it stays armed across operations.
    stream.expires_at(deadline);
    // The proxy caps the buffer of the connections it uses; the parser's limits bound it here.
    buffer.max_size(std::numeric_limits<size_t>::max());
    ++connection->requests;
    // One parser per response read; the first also serves the stale check after a failed write.
    std::optional<http::response_parser<http::string_body>> parser(std::in_place);
    const char* step = "write to";
    co_await http::async_write(stream, message, asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) {
      step = "read from";
      // Header first: Beast 1.74 skips the Content-Length body_limit check when the header
      // and the body arrive in one read. Interim responses (100 Continue, 103 Early Hints)
      // are skipped: taken for the answer, the real one would be left for the connection's
      // next user.
      do {
        parser.emplace();
        parser->body_limit(request.max_response_body);
        if (request.method == "HEAD") parser->skip(true);  // a length but no body
        if (net::Pending rest =
                net::StartReadHttp(stream, buffer, *parser, net::ParseUntil::kHeaderDone, std::nullopt, ec)) {
          co_await std::move(*rest);
        }
      } while (!ec && net::InterimResponse(*parser));
      if (!ec) {
        if (net::Pending rest =
                net::StartReadHttp(stream, buffer, *parser, net::ParseUntil::kMessageDone, std::nullopt, ec)) {
          co_await std::move(*rest);
        }
      }
    }
    // A server may send 408 on a kept-alive connection it is closing, before or as a request
    // arrives (RFC 9110 §15.5.9), and reset it: a request that may be repeated goes again.
    if (reused && idempotent && parser->is_header_done() && parser->get().result_int() == 408) {
      pool->DropClosed(connection->key);
      continue;
    }
    if (ec) {
      // A kept-alive connection the server closed just as the request went out fails
      // before any byte of the response. The server dropped the request or, rarely,
      // handled it and went away before answering: only a request that may be repeated
      // is sent again.
      const bool stale = reused && ec != beast::error::timeout && !parser->got_some() &&
                         buffer.size() == 0;
      if (stale && idempotent) {
        pool->DropClosed(connection->key);
        continue;
      }
      co_return Failure(ec, step, request, stale);
    }

    // A 101 hands the connection to another protocol: never reused.
    const bool keep = pool != nullptr && parser->keep_alive() && buffer.size() == 0 &&
                      parser->get().result_int() != 101;
    auto response = parser->release();
    if (keep) {
      pool->Release(std::move(connection));
    } else {
      error_code ignored;
      stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    }
    Result result;
    result.response = Response{response.result_int(), std::move(response.base()),
                               std::move(response.body())};
    co_return result;
  }
}
#pragma GCC diagnostic pop

}  // namespace meshplug::plugins::http_client
