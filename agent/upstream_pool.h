// Kept-alive upstream connections of one worker thread, per endpoint. Not thread-safe:
// each worker owns one and only its coroutines use it.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
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
  // Bytes read but not parsed yet. Its max_size is set by the user of the connection
  // (the proxy caps it at header limit + one body piece); a pooled connection's is empty.
  beast::flat_buffer buffer;
  std::string key;  // "host:port"
  uint32_t requests = 0;  // requests sent on this connection
  std::chrono::steady_clock::time_point idle_since;
  // How long the connection may stay in the pool unused (the cluster's idle timeout).
  std::chrono::milliseconds idle_timeout{0};
};

class UpstreamPool {
 public:
  static constexpr size_t kMaxIdlePerEndpoint = 64;

  explicit UpstreamPool(net::any_io_executor executor);
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // A kept-alive connection to host:port not idle longer than `idle_timeout` (unless
  // `allow_reuse` is false), or a new one connected within `connect_timeout`. `reused`
  // tells which. nullptr and `ec` on failure (beast::error::timeout when the connect
  // timed out).
  net::awaitable<std::unique_ptr<UpstreamConnection>> Acquire(
      const std::string& host, uint16_t port, std::chrono::milliseconds connect_timeout,
      std::chrono::milliseconds idle_timeout, bool allow_reuse, bool& reused,
      beast::error_code& ec);

  // A new connection to host:port (an IP literal, or a name resolved by DNS), connected
  // within `timeout`; nullptr and `ec` on failure. For the HTTP pool and the TCP proxy.
  net::awaitable<std::unique_ptr<UpstreamConnection>> Connect(const std::string& host,
                                                              uint16_t port,
                                                              std::chrono::milliseconds timeout,
                                                              beast::error_code& ec);

  // Keeps a connection whose last exchange ended cleanly for reuse, for its idle timeout
  // (set by Acquire). A connection with unparsed bytes in its buffer is closed instead:
  // they would be read as the next request's response.
  void Release(std::unique_ptr<UpstreamConnection> connection);

  size_t idle() const;
  // Endpoints with idle connections.
  size_t endpoints() const { return idle_.size(); }

 private:
  // Closes connections past their idle timeout or closed by the peer, drops endpoints
  // left without any, and re-arms the timer for the next expiry.
  void Sweep();
  void ArmSweep(std::chrono::steady_clock::time_point when);

  net::any_io_executor executor_;
  std::map<std::string, std::deque<std::unique_ptr<UpstreamConnection>>, std::less<>> idle_;
  net::steady_timer sweep_timer_;
  std::chrono::steady_clock::time_point sweep_at_ = std::chrono::steady_clock::time_point::max();
  // Expires with the pool, so that a sweep handler that runs after it does nothing.
  std::shared_ptr<UpstreamPool*> self_;
};

}  // namespace meshplug::agent
