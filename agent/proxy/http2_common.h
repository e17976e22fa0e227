// What the HTTP/2 server (clients' streams) and client (upstream streams) sides share: a
// condition to wait on, header lists for nghttp2, and the loops that move an nghttp2
// session's bytes to and from a connection.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <nghttp2/nghttp2.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/fields.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "net/stream.h"

namespace meshplug::agent::proxy {

// Receive windows. A stream's body is acknowledged (WINDOW_UPDATE) only as it is relayed,
// so a sender sends no faster than the far side reads; the connection window bounds what
// all streams of a connection may hold at once.
inline constexpr int32_t kHttp2StreamWindow = 256 * 1024;
inline constexpr int32_t kHttp2ConnectionWindow = 4 * 1024 * 1024;

// A condition to wait on: Notify wakes the one waiter (at most one waits at a time: a
// second would miss the Notify). The waiter checks its condition before each wait, so a
// Notify with nobody waiting is not missed (one thread).
class Signal {
 public:
  explicit Signal(const boost::asio::any_io_executor& executor) : executor_(executor) {}
  void Notify() {
    if (waiting_) timer_->cancel();  // with nobody waiting there is nothing to cancel
  }
  // False when `deadline` passed first.
  boost::asio::awaitable<bool> Wait(std::chrono::steady_clock::time_point deadline);
  bool waiting() const { return waiting_; }

 private:
  boost::asio::any_io_executor executor_;
  // Made by the first Wait: most of a stream's signals are never waited on.
  std::optional<boost::asio::steady_timer> timer_;
  bool waiting_ = false;
};

// A connection's idle timeout. Streams beginning and ending mark the time (Touch) instead
// of waking the loop that waits, which wakes only when the timeout has passed.
class IdleWatch {
 public:
  explicit IdleWatch(const boost::asio::any_io_executor& executor) : wake_(executor) {}
  // A stream began or ended.
  void Touch() { last_ = std::chrono::steady_clock::now(); }
  // The connection is ending: Quiet returns false, now or when next called.
  void Stop() {
    stopped_ = true;
    wake_.Notify();
  }
  // Waits until no stream has begun or ended for `idle`, then asks `busy()`: while it says
  // so, a full `idle` more each time. False once stopped.
  boost::asio::awaitable<bool> Quiet(std::chrono::milliseconds idle, std::function<bool()> busy);

 private:
  Signal wake_;
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
  bool stopped_ = false;
};

// A stream's body as it arrives: what nghttp2 received and the exchange has not taken.
// Taking gives the sender its window back (see kHttp2StreamWindow).
class Http2Inbox {
 public:
  explicit Http2Inbox(const boost::asio::any_io_executor& executor) : readable_(executor) {}

  void Append(const uint8_t* data, size_t size);
  void End();  // END_STREAM arrived
  void Close();  // the stream closed: a pending Read ends
  void Cancel();  // a Read waiting now ends with operation_aborted (nothing if none waits)
  size_t unread() const { return bytes_.size() - offset_; }
  bool ended() const { return ended_; }
  bool done() const { return ended_ && unread() == 0; }
  // Drops what was not taken; how many bytes that was.
  size_t Drop();
  // The next non-empty piece of at most `max` bytes into `out` (empty at the end), waiting at
  // most `idle` (beast::error::timeout); `consume(n)` is called for what was taken while the
  // stream is open (held by the read: it may be returned, not awaited, by its caller).
  // connection_reset when the stream closed before its end.
  boost::asio::awaitable<void> Read(std::string& out, size_t max, std::chrono::milliseconds idle,
                                    std::function<void(size_t)> consume, boost::beast::error_code& ec);

 private:
  std::string bytes_;
  size_t offset_ = 0;
  bool ended_ = false;
  bool closed_ = false;
  bool cancelled_ = false;
  Signal readable_;
};

// A stream's body as it leaves: bytes nghttp2 has not taken yet (flow control lets them
// out as the peer's window allows).
class Http2Outbox {
 public:
  explicit Http2Outbox(const boost::asio::any_io_executor& executor) : writable_(executor) {}

  // `last` ends the body.
  void Append(std::string_view piece, bool last);
  // The response ended with its header (no body, no data source).
  void EndWithHeader() {
    ended_ = true;
    eof_taken_ = true;
  }
  bool ended() const { return ended_; }
  // nghttp2 has taken the whole body, its end included.
  bool done() const { return eof_taken_; }
  size_t pending() const { return bytes_.size() - offset_; }
  void Close();  // the stream closed: a pending Drain ends
  // nghttp2's data source: up to `length` bytes into `buf`; NGHTTP2_DATA_FLAG_EOF in
  // `flags` once the body ended and all is taken; NGHTTP2_ERR_DEFERRED while empty.
  ssize_t Take(uint8_t* buf, size_t length, uint32_t* flags);
  // Waits until at most `limit` bytes are pending — with 0 on an ended body, until nghttp2
  // has taken its end too (the last DATA frame, or the trailers) — at most `idle`
  // (beast::error::timeout; a peer that opens no window holds a stream no longer),
  // connection_reset if the stream closes first.
  boost::asio::awaitable<void> Drain(size_t limit, std::chrono::milliseconds idle, boost::beast::error_code& ec);

 private:
  std::string bytes_;
  size_t offset_ = 0;
  bool ended_ = false;
  bool eof_taken_ = false;
  bool closed_ = false;
  Signal writable_;
};

struct Http2Callbacks {
  nghttp2_on_begin_headers_callback on_begin_headers = nullptr;
  nghttp2_on_header_callback on_header = nullptr;
  nghttp2_on_frame_recv_callback on_frame_recv = nullptr;
  nghttp2_on_data_chunk_recv_callback on_data_chunk_recv = nullptr;
  nghttp2_on_stream_close_callback on_stream_close = nullptr;
};

// A server or client session with `callbacks` (called with `user`) that acknowledges DATA
// only when told (nghttp2_session_consume), with our receive windows and `settings` (the
// initial window added) queued; nullptr when nghttp2 cannot make one. The rest of the
// known attacks are nghttp2's defaults in Debian's 1.52 with its security fixes: SETTINGS
// and PING floods (at most 1,000 queued acknowledgements), CONTINUATION floods (8 per
// header block), RST_STREAM floods (a token bucket, 1,000 then 33/s).
nghttp2_session* NewHttp2Session(bool server, const Http2Callbacks& callbacks, void* user,
                                 std::vector<nghttp2_settings_entry> settings);

// A header list for nghttp2, which copies it on submit (and lowers the names' case as it
// does): until then it views the names and values it was given. Pseudo-fields first, then
// the fields of an HTTP/1.1-style header without the connection-specific ones.
class NvList {
 public:
  // Both stay valid until the list is submitted.
  void Add(std::string_view name, std::string_view value);
  // The fields of `fields` (valid until submitted) but the hop-by-hop ones, which include
  // the connection-specific ones of RFC 9113 §8.2.2, and `skip`.
  void AddFields(const boost::beast::http::fields& fields,
                 boost::beast::http::field skip = boost::beast::http::field::unknown);
  const nghttp2_nv* data() const { return nva_.data(); }
  size_t size() const { return nva_.size(); }

 private:
  absl::InlinedVector<nghttp2_nv, 16> nva_;  // room for a usual header without allocating
};

// Feeds what `stream` reads to `session` until the session wants no more, the connection
// ends or fails, or nghttp2 fails (its error returned; 0 otherwise). `initial`: bytes
// already read. `after` runs after each read (something may be ready to send).
boost::asio::awaitable<ssize_t> ReadFrames(net::Stream& stream, nghttp2_session* session, std::string initial,
                                           const std::function<void()>& after);

// Writes what `session` has to send, gathered into writes of up to 64 KiB, until it has
// nothing more; false when a write failed.
boost::asio::awaitable<bool> WriteFrames(net::Stream& stream, nghttp2_session* session, std::chrono::milliseconds timeout,
                                         std::string& scratch);

}  // namespace meshplug::agent::proxy
