// A connection's byte stream: plain TCP, or TLS on top of it once a handshake has run.
// Reads and writes go to whichever it is; the deadline (expires_after) and the socket are
// the TCP layer's, so every read and write of either kind is bounded the same way. The HTTP
// proxy, the upstream pool and http_call all read and write through it.
//
// Deadlines behave as Beast's tcp_stream's: a deadline bounds the operations started while
// it is set; when it passes with one of them pending, the socket is closed and they fail
// with beast::error::timeout; an operation started after it passed fails the same way;
// setting a new deadline (or none) starts over. They are kept by net::Deadlines, not by a
// timer per operation.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/async_result.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/core/error.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "net/deadlines.h"

namespace meshplug::net {

class Stream {
 public:
  using executor_type = boost::asio::ip::tcp::socket::executor_type;
  using Clock = std::chrono::steady_clock;

  explicit Stream(boost::asio::ip::tcp::socket socket) : tcp_(std::make_shared<Tcp>(std::move(socket))) {}
  explicit Stream(const executor_type& executor) : Stream(boost::asio::ip::tcp::socket(executor)) {}
  Stream(Stream&&) = delete;
  // Closes the socket: pending operations complete with operation_aborted (they hold the
  // socket, which would otherwise outlive the stream).
  ~Stream() {
    boost::system::error_code ignored;
    tcp_->socket.close(ignored);
    tcp_->ClearDeadline();
  }

  executor_type get_executor() { return tcp_->socket.get_executor(); }
  boost::asio::ip::tcp::socket& socket() { return tcp_->socket; }
  template <typename Duration>
  void expires_after(Duration d) { expires_at(Clock::now() + d); }
  void expires_at(Clock::time_point t) { tcp_->SetDeadline(t); }
  void expires_never() { tcp_->ClearDeadline(); }
  // Ends the pending operations of either kind (they complete with operation_aborted).
  void cancel() {
    boost::system::error_code ignored;
    tcp_->socket.cancel(ignored);
  }

  // TLS from now on (after a handshake the caller runs on tls()); `context` stays alive
  // with the stream, so a new certificate for later connections does not touch this one.
  void StartTls(std::shared_ptr<boost::asio::ssl::context> context);
  bool secure() const { return tls_ != nullptr; }

  // What TLS reads and writes through: the TCP layer, with the stream's deadline.
  class TcpLayer {
   public:
    using executor_type = Stream::executor_type;
    using lowest_layer_type = boost::asio::ip::tcp::socket;
    explicit TcpLayer(Stream& stream) : stream_(&stream) {}
    executor_type get_executor() { return stream_->get_executor(); }
    lowest_layer_type& lowest_layer() { return stream_->socket(); }
    template <typename MutableBuffers, typename Token>
    auto async_read_some(const MutableBuffers& buffers, Token&& token) {
      return boost::asio::async_initiate<Token, void(boost::beast::error_code, std::size_t)>(
          [stream = stream_](auto handler, const MutableBuffers& into) { stream->TcpRead(into, std::move(handler)); },
          token, buffers);
    }
    template <typename ConstBuffers, typename Token>
    auto async_write_some(const ConstBuffers& buffers, Token&& token) {
      return boost::asio::async_initiate<Token, void(boost::beast::error_code, std::size_t)>(
          [stream = stream_](auto handler, const ConstBuffers& from) { stream->TcpWrite(from, std::move(handler)); },
          token, buffers);
    }

   private:
    Stream* stream_;
  };
  boost::asio::ssl::stream<TcpLayer>& tls() { return *tls_; }

  template <typename MutableBuffers, typename Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::beast::error_code, std::size_t)>(
        [this](auto handler, const MutableBuffers& into) {
          if (tls_) {
            tls_->async_read_some(into, std::move(handler));
          } else {
            TcpRead(into, std::move(handler));
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
            TcpWrite(from, std::move(handler));
          }
        },
        token, buffers);
  }

  // Connects to the first of `endpoints` that accepts, within the deadline.
  template <typename Endpoints, typename Token>
  auto async_connect(const Endpoints& endpoints, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::beast::error_code, boost::asio::ip::tcp::endpoint)>(
        [this](auto handler, const Endpoints& to) {
          Track(std::move(handler),
                [&](auto completion) { boost::asio::async_connect(tcp_->socket, to, std::move(completion)); });
        },
        token, endpoints);
  }

 private:
  // The socket and its deadline; shared with the completions of its pending operations,
  // which may run after the stream is gone.
  struct Tcp final : Deadlines::Entry {
    explicit Tcp(boost::asio::ip::tcp::socket s) : socket(std::move(s)), deadlines(Deadlines::For(socket.get_executor())) {}
    ~Tcp() override { deadlines.Clear(*this); }

    void SetDeadline(Clock::time_point t) {
      expired = timed_out = false;
      deadlines.Set(*this, t);
    }
    void ClearDeadline() {
      expired = timed_out = false;
      deadlines.Clear(*this);
    }
    void Expired() override {
      if (pending > 0) {
        TimeOut();
      } else {
        expired = true;  // for the next operation
      }
    }
    void TimeOut() {
      expired = false;
      timed_out = true;
      boost::system::error_code ignored;
      socket.close(ignored);
    }

    boost::asio::ip::tcp::socket socket;
    Deadlines& deadlines;
    int pending = 0;         // operations the deadline bounds, started and not completed
    bool expired = false;    // the deadline passed while nothing was pending
    bool timed_out = false;  // the deadline closed the socket
  };

  // An operation's completion: it is no longer pending, and an error that its deadline
  // caused is reported as beast::error::timeout. Runs where the handler would have.
  template <typename Handler>
  struct Completion {
    std::shared_ptr<Tcp> tcp;
    Handler handler;
    bool bounded;  // started under a deadline

    using executor_type = boost::asio::associated_executor_t<Handler, Stream::executor_type>;
    executor_type get_executor() const noexcept {
      return boost::asio::get_associated_executor(handler, tcp->socket.get_executor());
    }
    using allocator_type = boost::asio::associated_allocator_t<Handler>;
    allocator_type get_allocator() const noexcept { return boost::asio::get_associated_allocator(handler); }

    template <typename... Results>
    void operator()(boost::beast::error_code ec, Results&&... results) {
      if (bounded) {
        --tcp->pending;
        if (tcp->timed_out) ec = boost::beast::error::timeout;
      }
      std::move(handler)(ec, std::forward<Results>(results)...);
    }
  };

  template <typename Handler, typename Start>
  void Track(Handler&& handler, Start&& start) {
    Tcp& tcp = *tcp_;
    bool bounded = tcp.is_linked();
    if (tcp.expired) {
      tcp.TimeOut();  // the operation fails at once, as timed out
      bounded = true;
    }
    if (bounded) ++tcp.pending;
    std::forward<Start>(start)(Completion<std::decay_t<Handler>>{tcp_, std::forward<Handler>(handler), bounded});
  }
  template <typename MutableBuffers, typename Handler>
  void TcpRead(const MutableBuffers& into, Handler&& handler) {
    Track(std::forward<Handler>(handler),
          [&](auto completion) { tcp_->socket.async_read_some(into, std::move(completion)); });
  }
  template <typename ConstBuffers, typename Handler>
  void TcpWrite(const ConstBuffers& from, Handler&& handler) {
    Track(std::forward<Handler>(handler),
          [&](auto completion) { tcp_->socket.async_write_some(from, std::move(completion)); });
  }

  std::shared_ptr<Tcp> tcp_;
  std::shared_ptr<boost::asio::ssl::context> context_;
  std::unique_ptr<boost::asio::ssl::stream<TcpLayer>> tls_;
};

// Whether a read's error is the end of what the peer sends: a TCP FIN, also under TLS
// (Asio calls that "stream truncated": the peer ended one direction without TLS's
// close_notify, which asio cannot send while the other direction is still open).
inline bool EndOfStream(const boost::beast::error_code& ec) {
  return ec == boost::asio::error::eof || ec == boost::asio::ssl::error::stream_truncated;
}

// Writes all of `buffers`, within `timeout`. On plain TCP, what the socket takes at once
// is written here, outside the event loop: an async write that completes at once still
// posts its completion (a turn of the loop). The rest, if any, and everything under TLS,
// is written asynchronously.
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
  tls_ = std::make_unique<boost::asio::ssl::stream<TcpLayer>>(TcpLayer(*this), *context_);
}

}  // namespace meshplug::net
