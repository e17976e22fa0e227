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
#include <boost/beast/http/fields.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "net/stream.h"

namespace meshplug::agent::proxy {

// Receive windows. A stream's body is acknowledged (WINDOW_UPDATE) only as it is relayed,
// so a sender sends no faster than the far side reads; the connection window bounds what
// all streams of a connection may hold at once.
inline constexpr int32_t kHttp2StreamWindow = 256 * 1024;
inline constexpr int32_t kHttp2ConnectionWindow = 4 * 1024 * 1024;

// A condition to wait on: Notify wakes the one waiter. The waiter checks its condition
// before each wait, so a Notify with nobody waiting is not missed (one thread).
class Signal {
 public:
  explicit Signal(const boost::asio::any_io_executor& executor);
  void Notify() { timer_.cancel(); }
  // False when `deadline` passed first.
  boost::asio::awaitable<bool> Wait(std::chrono::steady_clock::time_point deadline);

 private:
  boost::asio::steady_timer timer_;
};

// The fields an HTTP/2 message may not carry (RFC 9113 §8.2.2), as well as TE (a request's
// "te: trailers" is added back where it is meant).
bool ConnectionSpecific(std::string_view name);

// A header list for nghttp2 (which copies it on submit): pseudo-fields first, then the
// fields of an HTTP/1.1-style header in lower case, without connection-specific ones.
class NvList {
 public:
  void Add(std::string_view name, std::string_view value);
  void AddFields(const boost::beast::http::fields& fields);
  const nghttp2_nv* data() const { return nva_.data(); }
  size_t size() const { return nva_.size(); }

 private:
  std::deque<std::string> strings_;  // names and values; a deque never moves them
  std::vector<nghttp2_nv> nva_;
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
