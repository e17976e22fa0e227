// A connection's byte stream: plain TCP, or TLS on top of it once a handshake has run.
// Reads and writes go to whichever it is; the deadline (expires_after) and the socket are
// the TCP layer's, so every read and write of either kind is bounded the same way. The HTTP
// proxy, the upstream pool and http_call all read and write through it.
//
// Deadlines behave as Beast's tcp_stream's: reads and writes (a connect counts as a write)
// each have their own; expires_after/at/never set those of the directions with nothing
// pending; a deadline bounds the operations of its direction started while it is set; when
// it passes with one of them pending, the socket is closed and that operation fails with
// beast::error::timeout; one started after it passed fails the same way. They are kept by
// net::Deadlines, not by a timer per operation.
//
// On plain TCP, while the worker's turns gather several writes, StartWrite holds a small
// write until the end of the event loop's turn (net::TurnEnd) and sends it then, with the
// turn's other writes. Later writes of any kind go after held bytes, and a stream destroyed
// with bytes held still sends them (within the held write's timeout) before its socket
// closes.
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
#include <boost/beast/core/buffers_cat.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/core/error.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "net/deadlines.h"
#include "net/pending.h"
#include "net/turn_end.h"

// Asio's reactor code here must be the patched one everywhere in the binary (its
// descriptor state differs from stock Asio's): a target that reaches Asio without
// //third_party:boost would mix the two.
#ifndef MESHPLUG_ASIO_RDHUP
#error "Asio without third_party/asio_rdhup.patch: depend on //third_party:boost"
#endif

namespace meshplug::net {

class Stream;
// Below, with Stream (declared here for its default argument).
template <typename ConstBuffers>
Pending StartWrite(Stream& stream, ConstBuffers buffers, std::chrono::milliseconds timeout,
                   boost::beast::error_code& ec, bool may_hold = true);

class Stream {
 public:
  using executor_type = boost::asio::ip::tcp::socket::executor_type;
  using Clock = std::chrono::steady_clock;

  explicit Stream(boost::asio::ip::tcp::socket socket)
      : tcp_(std::make_shared<Tcp>(std::move(socket))), layer_(tcp_) {}
  explicit Stream(const executor_type& executor) : Stream(boost::asio::ip::tcp::socket(executor)) {}
  Stream(Stream&&) = delete;
  // Closes the socket: pending operations complete with operation_aborted (they hold the
  // socket, which would otherwise outlive the stream). Held bytes go first.
  ~Stream() { tcp_->Close(); }

  executor_type get_executor() { return tcp_->socket.get_executor(); }
  // For socket options and addresses. A shutdown of the sending side comes after Flush.
  boost::asio::ip::tcp::socket& socket() { return tcp_->socket; }
  template <typename Duration>
  void expires_after(Duration d) { expires_at(Clock::now() + d); }
  void expires_at(Clock::time_point t) { tcp_->SetDeadlines(t); }
  void expires_never() { tcp_->SetDeadlines(std::nullopt); }
  // Ends the pending operations of either kind (they complete with operation_aborted).
  void cancel() {
    boost::system::error_code ignored;
    tcp_->socket.cancel(ignored);
    if (tcp_->drain.pending) tcp_->WaitWritable();  // held bytes still go, by the same deadline
  }
  // The failure of a write this stream held, if one failed: its bytes never reached the
  // socket.
  const boost::system::error_code& held_write_error() const { return tcp_->held_error; }

  // TLS from now on (after a handshake the caller runs on tls()); `context` stays alive
  // with the stream, so a new certificate for later connections does not touch this one.
  void StartTls(std::shared_ptr<boost::asio::ssl::context> context);
  bool secure() const { return tls_ != nullptr; }

 private:
  template <typename ConstBuffers>
  friend Pending StartWrite(Stream& stream, ConstBuffers buffers, std::chrono::milliseconds timeout,
                            boost::beast::error_code& ec, bool may_hold);
  friend Pending Flush(Stream& stream, boost::beast::error_code& ec);

  // The most StartWrite holds for the end of the turn; a larger write goes at once.
  static constexpr size_t kHoldLimit = 16 * 1024;
  // The held bytes' buffer a connection keeps between writes.
  static constexpr size_t kKeptCapacity = 4 * 1024;

  struct Tcp;
  // One direction's deadline. Set only while none of its operations is pending, so that a
  // deadline set for one direction never moves the other's pending one.
  struct Slot final : Deadlines::Entry {
    explicit Slot(Tcp& t) : tcp(t) {}
    void Expired() override;
    Tcp& tcp;
    bool pending = false;  // an operation started and not completed
    bool passed = false;   // the deadline has passed: operations bounded by it time out
  };
  // The socket, its two deadlines and the bytes StartWrite holds; shared with the
  // completions of pending operations, which may run after the stream is gone.
  struct Tcp final : TurnEnd::Entry, std::enable_shared_from_this<Tcp> {
    explicit Tcp(boost::asio::ip::tcp::socket s)
        : socket(std::move(s)),
          deadlines(Deadlines::For(socket.get_executor())),
          turn_end(TurnEnd::For(socket.get_executor())),
          read(*this),
          write(*this),
          drain(*this) {}
    ~Tcp() {
      deadlines.Forget(read);
      deadlines.Forget(write);
      deadlines.Forget(drain);
    }
    // Those of the directions with nothing pending; none without `t`.
    void SetDeadlines(std::optional<Clock::time_point> t) {
      for (Slot* slot : {&read, &write}) {
        if (slot->pending) continue;
        slot->passed = false;
        if (t) {
          deadlines.Set(*slot, *t);
        } else {
          deadlines.Clear(*slot);
        }
      }
    }
    // Appends `buffers` to the held bytes, unless that would hold more than kHoldLimit or
    // holding is not worthwhile now (and nothing is held).
    template <typename ConstBuffers>
    bool Hold(const ConstBuffers& buffers, std::chrono::milliseconds timeout) {
      if (held.size() + boost::asio::buffer_size(buffers) > kHoldLimit || !socket.is_open()) return false;
      if (held.empty() && !turn_end.Worthwhile()) return false;
      for (boost::asio::const_buffer b : boost::beast::buffers_range_ref(buffers)) {
        held.append(static_cast<const char*>(b.data()), b.size());
      }
      held_timeout = timeout;
      if (!listed && !drain.pending) {
        listed = true;
        turn_end.Add(shared_from_this());
      }
      return true;
    }
    void AtTurnEnd() override {
      listed = false;
      SendHeld(true);
    }
    // Sends what the socket takes of `buffers` now, without waiting; would_block is no error.
    template <typename ConstBuffers>
    size_t SendNow(const ConstBuffers& buffers, boost::system::error_code& ec) {
      ec = {};
      // Once per connection (an ioctl): a would-be-blocking send returns instead of waiting.
      if (!socket.non_blocking()) socket.non_blocking(true, ec);
      const size_t n = ec ? 0 : socket.send(buffers, 0, ec);
      if (ec == boost::asio::error::would_block) ec = {};
      return n;
    }
    // Sends what the socket takes of the held bytes now; with `wait`, the rest once it is
    // writable. Whether none are left (sent, or dropped by a failure kept in held_error).
    bool SendHeld(bool wait) {
      if (!held.empty()) {
        boost::system::error_code ec;
        held.erase(0, SendNow(boost::asio::buffer(held), ec));
        if (ec) {
          held_error = ec;
          held.clear();
        }
      }
      if (held.empty()) {
        // An idle connection keeps no more than a small buffer (a burst of large writes
        // would otherwise leave up to kHoldLimit with each).
        if (held.capacity() > kKeptCapacity) std::string().swap(held);
        EndDrain();
        if (closing) CloseNow();
        return true;
      }
      if (wait && !drain.pending) Drain();
      return false;
    }
    // Nothing is held any more: the drain's deadline no longer applies (a wait still
    // outstanding finds nothing to send).
    void EndDrain() {
      if (!drain.pending) return;
      drain.pending = false;
      deadlines.Clear(drain);
    }
    // The held bytes, which the caller writes before its own, under its own deadline; none
    // are held after.
    std::string TakeHeld() {
      std::string taken = std::move(held);
      held.clear();
      EndDrain();
      return taken;
    }
    // Waits, within the held write's timeout, until the socket takes more.
    void Drain() {
      drain.passed = false;
      drain.pending = true;
      deadlines.Set(drain, Clock::now() + held_timeout);
      WaitWritable();
    }
    void WaitWritable() {
      socket.async_wait(boost::asio::socket_base::wait_write, [self = shared_from_this()](boost::system::error_code ec) {
        if (ec == boost::asio::error::operation_aborted && self->socket.is_open()) return;  // cancel() waits again
        self->EndDrain();
        if (self->drain.passed && !self->held.empty()) {
          self->held_error = boost::beast::error::timeout;
          self->held.clear();
        }
        self->SendHeld(true);
      });
    }
    // The stream is gone: the socket closes once no bytes are held.
    void Close() {
      if (SendHeld(false)) {
        CloseNow();
        return;
      }
      closing = true;
      boost::system::error_code ignored;
      socket.cancel(ignored);  // pending operations end now, the drain's too (it starts again)
      Drain();
    }
    void CloseNow() {
      boost::system::error_code ignored;
      socket.close(ignored);
    }

    boost::asio::ip::tcp::socket socket;
    Deadlines& deadlines;
    TurnEnd& turn_end;
    Slot read;
    Slot write;
    Slot drain;  // pending while the held bytes wait for the socket to take more

    std::string held;  // bytes StartWrite accepted that the socket has not taken yet
    std::chrono::milliseconds held_timeout{0};
    boost::system::error_code held_error;  // a held write failed: so fail the next StartWrite, Flush
    bool listed = false;   // to be sent at the end of this turn
    bool closing = false;  // the stream is gone: close once nothing is held
  };

  // An operation's completion: its direction has nothing pending, and an error its
  // deadline caused is reported as beast::error::timeout. Runs where the handler would have.
  template <typename Handler>
  struct Completion {
    std::shared_ptr<Tcp> tcp;
    Slot* slot;
    bool bounded;  // started under a deadline
    Handler handler;

    using executor_type = boost::asio::associated_executor_t<Handler, Stream::executor_type>;
    executor_type get_executor() const noexcept {
      return boost::asio::get_associated_executor(handler, tcp->socket.get_executor());
    }
    using allocator_type = boost::asio::associated_allocator_t<Handler>;
    allocator_type get_allocator() const noexcept { return boost::asio::get_associated_allocator(handler); }

    template <typename... Results>
    void operator()(boost::beast::error_code ec, Results&&... results) {
      slot->pending = false;
      if (bounded && slot->passed) ec = boost::beast::error::timeout;
      std::move(handler)(ec, std::forward<Results>(results)...);
    }
  };

 public:
  // The TCP layer: plain reads and writes go to it, and TLS reads and writes through it.
  class TcpLayer {
   public:
    using executor_type = Stream::executor_type;
    using lowest_layer_type = boost::asio::ip::tcp::socket;
    explicit TcpLayer(std::shared_ptr<Tcp> tcp) : tcp_(std::move(tcp)) {}
    executor_type get_executor() { return tcp_->socket.get_executor(); }
    lowest_layer_type& lowest_layer() { return tcp_->socket; }

    template <typename MutableBuffers, typename Token>
    auto async_read_some(const MutableBuffers& buffers, Token&& token) {
      return Start<void(boost::beast::error_code, std::size_t)>(
          &Tcp::read, token,
          [](Tcp& tcp, auto completion, const MutableBuffers& into) {
            tcp.socket.async_read_some(into, std::move(completion));
          },
          buffers);
    }
    template <typename ConstBuffers, typename Token>
    auto async_write_some(const ConstBuffers& buffers, Token&& token) {
      return Start<void(boost::beast::error_code, std::size_t)>(
          &Tcp::write, token,
          [](Tcp& tcp, auto completion, const ConstBuffers& from) {
            if (tcp.held.empty() || tcp.SendHeld(false)) {
              tcp.socket.async_write_some(from, std::move(completion));
              return;
            }
            // Held bytes the socket has not taken go first, in the same write.
            auto before = std::make_shared<std::string>(tcp.TakeHeld());
            boost::asio::async_write(tcp.socket, boost::beast::buffers_cat(boost::asio::buffer(*before), from),
                                     [before, completion = std::move(completion)](boost::beast::error_code ec,
                                                                                  size_t n) mutable {
                                       std::move(completion)(ec, n > before->size() ? n - before->size() : 0);
                                     });
          },
          buffers);
    }
    // Connects to the first of `endpoints` that accepts, within the write deadline.
    template <typename Endpoints, typename Token>
    auto async_connect(const Endpoints& endpoints, Token&& token) {
      return Start<void(boost::beast::error_code, boost::asio::ip::tcp::endpoint)>(
          &Tcp::write, token,
          [](Tcp& tcp, auto completion, const Endpoints& to) {
            boost::asio::async_connect(tcp.socket, to, std::move(completion));
          },
          endpoints);
    }

   private:
    // Starts `begin(socket, completion, arg)` as an operation of the `direction` slot.
    template <typename Signature, typename Token, typename Begin, typename Arg>
    auto Start(Slot Tcp::*direction, Token& token, Begin begin, const Arg& arg) {
      return boost::asio::async_initiate<Token, Signature>(
          [this, direction, begin](auto handler, const Arg& a) {
            Slot& slot = (*tcp_).*direction;
            const bool bounded = slot.armed() || slot.passed;
            if (slot.passed) tcp_->CloseNow();  // the operation fails at once, as timed out
            slot.pending = true;
            begin(*tcp_, Completion<decltype(handler)>{tcp_, &slot, bounded, std::move(handler)}, a);
          },
          token, arg);
    }

    std::shared_ptr<Tcp> tcp_;
  };

  boost::asio::ssl::stream<TcpLayer>& tls() { return *tls_; }

  // Read and write are written out alike on purpose: one shared template layer for the
  // choice of TLS or TCP cost 290 instructions per proxied request (callgrind, path d).
  template <typename MutableBuffers, typename Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::beast::error_code, std::size_t)>(
        [this](auto handler, const MutableBuffers& into) {
          if (tls_) {
            tls_->async_read_some(into, std::move(handler));
          } else {
            layer_.async_read_some(into, std::move(handler));
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
            layer_.async_write_some(from, std::move(handler));
          }
        },
        token, buffers);
  }

  template <typename Endpoints, typename Token>
  auto async_connect(const Endpoints& endpoints, Token&& token) {
    return layer_.async_connect(endpoints, std::forward<Token>(token));
  }

 private:
  std::shared_ptr<Tcp> tcp_;
  TcpLayer layer_;
  std::shared_ptr<boost::asio::ssl::context> context_;
  std::unique_ptr<boost::asio::ssl::stream<TcpLayer>> tls_;
};

// Whether a read's error is the end of what the peer sends: a TCP FIN, also under TLS
// (Asio calls that "stream truncated": the peer ended one direction without TLS's
// close_notify, which asio cannot send while the other direction is still open).
inline bool EndOfStream(const boost::beast::error_code& ec) {
  return ec == boost::asio::error::eof || ec == boost::asio::ssl::error::stream_truncated;
}

namespace detail {

// The rest of StartWrite's write, within `timeout` (the stream's async writes send held
// bytes first).
template <typename ConstBuffers>
boost::asio::awaitable<void> WriteRest(Stream& stream, boost::beast::buffers_suffix<ConstBuffers> rest,
                                       std::chrono::milliseconds timeout, boost::beast::error_code& ec) {
  stream.expires_after(timeout);
  co_await boost::asio::async_write(stream, rest, boost::asio::redirect_error(boost::asio::use_awaitable, ec));
}

// Flush's rest: `held`, taken from the stream, within `timeout`.
inline boost::asio::awaitable<void> WriteHeld(Stream& stream, std::string held, std::chrono::milliseconds timeout,
                                              boost::beast::error_code& ec) {
  stream.expires_after(timeout);
  co_await boost::asio::async_write(stream, boost::asio::buffer(held),
                                    boost::asio::redirect_error(boost::asio::use_awaitable, ec));
}

}  // namespace detail

// Writes all of `buffers`, within `timeout`. On plain TCP, while the worker's turns gather
// several writes, a write of up to kHoldLimit bytes (with those held already) is held and
// sent at the end of the event loop's turn (net::TurnEnd), and reported done now; if sending
// it fails, the stream's next StartWrite or Flush fails with that error. Without
// `may_hold` (the caller must know now whether it failed), it is not held. Otherwise it is
// written here, outside the event loop, as far as the socket takes it at once (an async
// write that completes at once still posts its completion: a turn of the loop); most end
// here (Pending). The rest, if any, and everything under TLS, is written by the awaitable
// returned.
//
// The buffer sequence is held by value; the bytes it views must outlive the write.
template <typename ConstBuffers>
Pending StartWrite(Stream& stream, ConstBuffers buffers, std::chrono::milliseconds timeout,
                   boost::beast::error_code& ec, bool may_hold) {
  // The suffix holds the sequence (Beast 1.74's has no move: a write that does not finish
  // here copies it into WriteRest, and Asio's async write again).
  using Rest = boost::beast::buffers_suffix<ConstBuffers>;
  if (stream.secure()) {
    ec = {};
    return detail::WriteRest(stream, Rest(boost::in_place_init, std::move(buffers)), timeout, ec);
  }
  Stream::Tcp& tcp = *stream.tcp_;
  ec = tcp.held_error;
  if (ec || (may_hold && tcp.Hold(buffers, timeout))) return std::nullopt;
  Rest rest(boost::in_place_init, std::move(buffers));
  // Held bytes go first. They are rare here (a write above kHoldLimit after a held one in
  // the same turn), so the usual write makes no call for them.
  if (!tcp.held.empty()) {
    if (!tcp.SendHeld(false)) return detail::WriteRest(stream, std::move(rest), timeout, ec);
    ec = tcp.held_error;  // their send may have failed
  }
  if (!ec) rest.consume(tcp.SendNow(rest, ec));
  if (ec || boost::asio::buffer_size(rest) == 0) return std::nullopt;
  return detail::WriteRest(stream, std::move(rest), timeout, ec);
}

// Sends the bytes StartWrite holds now (before the sending side is shut down), within the
// held write's timeout: most go here (Pending); the rest by the awaitable returned.
inline Pending Flush(Stream& stream, boost::beast::error_code& ec) {
  Stream::Tcp& tcp = *stream.tcp_;
  if (tcp.SendHeld(false)) {
    ec = tcp.held_error;
    return std::nullopt;
  }
  ec = {};
  return detail::WriteHeld(stream, tcp.TakeHeld(), tcp.held_timeout, ec);
}

inline void Stream::Slot::Expired() {
  passed = true;
  if (pending) tcp.CloseNow();  // the pending operation fails, as timed out
}

inline void Stream::StartTls(std::shared_ptr<boost::asio::ssl::context> context) {
  context_ = std::move(context);
  tls_ = std::make_unique<boost::asio::ssl::stream<TcpLayer>>(layer_, *context_);
}

}  // namespace meshplug::net
