// Kept-alive upstream connections of one worker thread, per endpoint. Not thread-safe:
// each worker owns one and only its coroutines use it.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <string>

namespace meshplug::agent {

namespace net = boost::asio;
namespace beast = boost::beast;

struct UpstreamConnection {
  explicit UpstreamConnection(const net::any_io_executor& ex) : stream(ex) {}

  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  std::string key;  // "host:port"
  uint32_t requests = 0;  // requests sent on this connection
  std::chrono::steady_clock::time_point idle_since;
};

class UpstreamPool {
 public:
  static constexpr size_t kMaxIdlePerEndpoint = 64;

  explicit UpstreamPool(net::any_io_executor executor) : executor_(std::move(executor)) {}

  // A kept-alive connection to host:port not idle longer than `idle_timeout`, or a new
  // one connected within `connect_timeout`. `reused` tells which. nullptr and `ec` on
  // failure (beast::error::timeout when the connect timed out).
  net::awaitable<std::unique_ptr<UpstreamConnection>> Acquire(
      const std::string& host, uint16_t port, std::chrono::milliseconds connect_timeout,
      std::chrono::milliseconds idle_timeout, bool& reused, beast::error_code& ec);

  // Keeps a connection whose last exchange ended cleanly for reuse.
  void Release(std::unique_ptr<UpstreamConnection> connection);

  size_t idle() const;

 private:
  net::awaitable<std::unique_ptr<UpstreamConnection>> Connect(const std::string& host,
                                                              uint16_t port,
                                                              std::chrono::milliseconds timeout,
                                                              beast::error_code& ec);

  net::any_io_executor executor_;
  std::map<std::string, std::deque<std::unique_ptr<UpstreamConnection>>, std::less<>> idle_;
};

}  // namespace meshplug::agent
