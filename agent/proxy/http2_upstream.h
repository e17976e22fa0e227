// HTTP/2 to upstreams whose cluster speaks it (Service ports of protocol http2 or grpc):
// h2 over mTLS to another agent, h2c to an app. One multiplexed connection per endpoint
// and worker carries every request to it, so a hop adds no connection per request.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <nghttp2/nghttp2.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/message.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "agent/proxy/http2_common.h"
#include "net/tls.h"
#include "net/upstream_pool.h"

namespace meshplug::agent::proxy {

class Http2UpstreamConnection;

// One request's stream. Everything runs on the worker's thread.
class Http2UpstreamStream {
 public:
  Http2UpstreamStream(std::shared_ptr<Http2UpstreamConnection> connection, const boost::asio::any_io_executor& executor);
  ~Http2UpstreamStream();

  // The request body, piece by piece (`last` ends it); waits while what flow control has
  // not let out yet is more than a piece, at most `idle`.
  boost::asio::awaitable<void> Write(std::string_view piece, bool last, std::chrono::milliseconds idle,
                                     boost::beast::error_code& ec);
  // Resets the stream (CANCEL) unless it has ended.
  void Cancel();
  // Lets the peer send up to `bytes` of the response body ahead of what was read (the
  // stream's receive window; kHttp2StreamWindow otherwise).
  void SetReceiveWindow(int32_t bytes);
  // PINGs the connection `interval` after the last PING was answered; when nothing at all
  // came from the peer within `timeout` of a PING, the connection closes (and every
  // stream on it): a peer that vanished without closing is noticed. Once per connection;
  // later calls change nothing.
  void KeepAlive(std::chrono::milliseconds interval, std::chrono::milliseconds timeout);

  // The final response header (interim 1xx skipped) by `deadline`; once per stream (it moves).
  boost::asio::awaitable<void> ReadHeader(boost::beast::http::response_header<>& out,
                                          std::chrono::steady_clock::time_point deadline, boost::beast::error_code& ec);
  // The response body ended and was read whole.
  bool done() const { return inbox_.done(); }
  // The next non-empty piece of the response body (empty at its end), waiting at most `idle`.
  boost::asio::awaitable<void> ReadBody(std::string& out, std::chrono::milliseconds idle, boost::beast::error_code& ec);
  // The response's trailers (gRPC's status), once done().
  const boost::beast::http::fields& trailers() const { return trailers_; }
  // Why a stream closed before its end: its RST_STREAM code (the peer's, or this side's
  // when nghttp2 refused what the peer sent), or nullopt when the connection closed (see
  // keepalive_failed).
  std::optional<uint32_t> reset_code() const { return close_error_; }
  // The connection was closed because a keepalive PING went unanswered.
  bool keepalive_failed() const;

 private:
  friend class Http2UpstreamConnection;
  // The stream ended for good (`error`: its RST_STREAM code, 0, or nullopt when the
  // connection closed under it): every wait ends.
  void Closed(std::optional<uint32_t> error);

  std::shared_ptr<Http2UpstreamConnection> connection_;
  int32_t id_ = -1;
  Http2Outbox outbox_;  // the request body
  // The response.
  std::optional<boost::beast::http::response_header<>> header_;  // the final one, once it came
  boost::beast::http::response_header<> receiving_;  // fields of the header block being read
  size_t header_bytes_ = 0;  // of the header block being read
  Signal header_wake_;
  boost::beast::http::fields trailers_;
  Http2Inbox inbox_;  // the response body
  bool closed_ = false;  // nghttp2 closed the stream, or it was given up
  std::optional<uint32_t> close_error_;  // set by Closed
};

class Http2UpstreamPool {
 public:
  explicit Http2UpstreamPool(boost::asio::any_io_executor executor) : executor_(std::move(executor)) {}

  // A stream to host:port carrying `request` (its header sent; `has_body`: Write follows):
  // on the endpoint's connection, or a new one connected within `connect_timeout` (with
  // `tls`, mTLS offering h2). A connection no stream used for `idle_timeout` closes; a
  // response header or trailer block over `max_header_bytes` resets its stream. When
  // `given_up` turns true while the connection is being made, nothing is sent
  // (operation_aborted).
  boost::asio::awaitable<std::unique_ptr<Http2UpstreamStream>> Open(
      const std::string& host, uint16_t port, std::chrono::milliseconds connect_timeout,
      std::chrono::milliseconds idle_timeout, uint32_t max_header_bytes, const net::TlsOrigination* tls,
      const boost::beast::http::request_header<>& request, bool has_body, const bool& given_up,
      boost::beast::error_code& ec);

  size_t connections() const { return connections_.size(); }
  // Closes every connection now; the streams on them end (connection_reset).
  void CloseAll();

 private:
  // A connect in progress: other requests to the same endpoint wait for it and share its
  // connection, so a burst of requests makes one connection, not one each.
  struct Connecting {
    explicit Connecting(const boost::asio::any_io_executor& executor)
        : done(executor, std::chrono::steady_clock::time_point::max()) {}
    boost::asio::steady_timer done;  // cancelled (every waiter woken) when the connect ends
    boost::beast::error_code ec;  // why it failed
  };

  std::shared_ptr<Http2UpstreamConnection> Usable(const std::string& key) const;
  // A new connection for `key`, kept in the pool; nullptr and `ec` on failure.
  boost::asio::awaitable<std::shared_ptr<Http2UpstreamConnection>> Connect(
      const std::string& key, const std::string& host, uint16_t port, std::chrono::milliseconds connect_timeout,
      std::chrono::milliseconds idle_timeout, uint32_t max_header_bytes, const net::TlsOrigination* tls,
      boost::beast::error_code& ec);

  boost::asio::any_io_executor executor_;
  std::map<std::string, std::shared_ptr<Http2UpstreamConnection>, std::less<>> connections_;
  std::map<std::string, std::shared_ptr<Connecting>, std::less<>> connecting_;
};

}  // namespace meshplug::agent::proxy
