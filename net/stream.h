// A connection's byte stream: plain TCP, or TLS on top of it once a handshake has run.
// Reads and writes go to whichever it is; timeouts (expires_after) and the socket are the
// TCP layer's, so every read and write of either kind is bounded the same way. The HTTP
// proxy, the upstream pool and http_call all read and write through it.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <memory>
#include <string>

namespace meshplug::net {

class Stream {
 public:
  using executor_type = boost::beast::tcp_stream::executor_type;

  explicit Stream(boost::asio::ip::tcp::socket socket) : tcp_(std::move(socket)) {}
  explicit Stream(const executor_type& executor) : tcp_(executor) {}
  Stream(Stream&&) = delete;

  executor_type get_executor() { return tcp_.get_executor(); }
  boost::asio::ip::tcp::socket& socket() { return tcp_.socket(); }
  boost::beast::tcp_stream& tcp() { return tcp_; }
  template <typename Duration>
  void expires_after(Duration d) { tcp_.expires_after(d); }
  void expires_never() { tcp_.expires_never(); }
  // Ends the pending operations of either kind (they complete with operation_aborted).
  void cancel() { tcp_.cancel(); }
  template <typename TimePoint>
  void expires_at(TimePoint t) { tcp_.expires_at(t); }

  // TLS from now on (after a handshake the caller runs on tls()); `context` stays alive
  // with the stream, so a new certificate for later connections does not touch this one.
  void StartTls(std::shared_ptr<boost::asio::ssl::context> context);
  bool secure() const { return tls_ != nullptr; }
  boost::asio::ssl::stream<boost::beast::tcp_stream&>& tls() { return *tls_; }

  template <typename MutableBuffers, typename Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::beast::error_code, std::size_t)>(
        [this](auto handler, const MutableBuffers& into) {
          if (tls_) {
            tls_->async_read_some(into, std::move(handler));
          } else {
            tcp_.async_read_some(into, std::move(handler));
          }
        },
        token, buffers);
  }

  template <typename ConstBuffers, typename Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::beast::error_code, std::size_t)>(
        [this](auto handler, const ConstBuffers& from) {
          if (tls_) {
            tls_->async_write_some(from, std::move(handler));
          } else {
            tcp_.async_write_some(from, std::move(handler));
          }
        },
        token, buffers);
  }

 private:
  boost::beast::tcp_stream tcp_;
  std::shared_ptr<boost::asio::ssl::context> context_;
  std::unique_ptr<boost::asio::ssl::stream<boost::beast::tcp_stream&>> tls_;
};

// Whether a read's error is the end of what the peer sends: a TCP FIN, also under TLS
// (Asio calls that "stream truncated": the peer ended one direction without TLS's
// close_notify, which asio cannot send while the other direction is still open).
inline bool EndOfStream(const boost::beast::error_code& ec) {
  return ec == boost::asio::error::eof || ec == boost::asio::ssl::error::stream_truncated;
}

// Writes all of `buffers`, within `timeout`. On plain TCP, what the socket takes at once
// is written here, outside the event loop: an async write that completes at once still
// posts its completion (a turn of the loop) and arms and cancels a timer. The rest, if
// any, and everything under TLS, is written asynchronously.
template <typename ConstBuffers>
boost::asio::awaitable<void> WriteAll(Stream& stream, const ConstBuffers& buffers, std::chrono::milliseconds timeout,
                                      boost::beast::error_code& ec) {
  ec = {};
  boost::beast::buffers_suffix<ConstBuffers> rest(buffers);
  if (!stream.secure()) {
    // Once per connection (an ioctl): a would-be-blocking send returns instead of waiting.
    if (!stream.socket().non_blocking()) stream.socket().non_blocking(true, ec);
    if (!ec) rest.consume(stream.socket().send(buffers, 0, ec));
    if (ec == boost::asio::error::would_block) ec = {};
    if (ec || boost::asio::buffer_size(rest) == 0) co_return;
  }
  stream.expires_after(timeout);
  co_await boost::asio::async_write(stream, rest, boost::asio::redirect_error(boost::asio::use_awaitable, ec));
}

inline void Stream::StartTls(std::shared_ptr<boost::asio::ssl::context> context) {
  context_ = std::move(context);
  tls_ = std::make_unique<boost::asio::ssl::stream<boost::beast::tcp_stream&>>(tcp_, *context_);
}

}  // namespace meshplug::net
