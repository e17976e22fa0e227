// Kept-alive upstream connections of one worker thread, per endpoint. Not thread-safe:
// each worker owns one and only its coroutines use it.
//
// One pool serves every client on the worker: the agent's HTTP load balancer and TCP
// proxy, and plugins' http_call (plugins/http_client, through HttpContext::pool). It lives
// below both so that there is a single implementation, and a connection to an endpoint
// kept by one of them can carry the other's next request.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/verb.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "net/stream.h"
#include "net/tls.h"

namespace meshplug::net {

struct UpstreamConnection {
  explicit UpstreamConnection(const boost::asio::any_io_executor& ex) : stream(ex) {}

  Stream stream;  // TLS when the endpoint speaks mTLS
  // Bytes read but not parsed yet. Its max_size is set by the user of the connection
  // (the proxy caps it at header limit + one body piece); a pooled connection's is empty.
  boost::beast::flat_buffer buffer;
  std::string key;  // "host:port"
  uint32_t requests = 0;  // requests sent on this connection
  std::chrono::steady_clock::time_point idle_since;
  // How long the connection may stay in the pool unused (set by whoever acquired it).
  std::chrono::milliseconds idle_timeout{0};
};

// The addresses of host:port: an IP literal as it is, without the resolver; a name from
// DNS. A lookup still running at `deadline` is abandoned and `ec` is beast::error::timeout.
// The calling coroutine's executor must run one handler at a time (an io_context per
// thread, or a strand).
boost::asio::awaitable<boost::asio::ip::tcp::resolver::results_type> ResolveUpstream(
    const std::string& host, uint16_t port, std::chrono::steady_clock::time_point deadline,
    boost::beast::error_code& ec);

// A new connection to host:port (an IP literal, or a name resolved by DNS) on `executor`,
// resolved and connected — with `tls`, also its mTLS handshake done — within `timeout`;
// nullptr and `ec` on failure (beast::error::timeout when the time ran out, a
// netdb/addrinfo error when the name did not resolve, a failed handshake's TLS error).
boost::asio::awaitable<std::unique_ptr<UpstreamConnection>> ConnectUpstream(
    boost::asio::any_io_executor executor, const std::string& host, uint16_t port,
    std::chrono::milliseconds timeout, boost::beast::error_code& ec, const TlsOrigination* tls = nullptr);

// Which pooled connections can carry a request to host:port: TLS and plain ones are never
// mixed, and with TLS the contexts count too, so after a renewal or a change of the mesh's
// trust (a CA rotation) connections made under the old ones take nothing new and idle out.
std::string PoolKey(const std::string& host, uint16_t port, const TlsOrigination* tls);

// Which connection a request may take.
enum class Reuse {
  kNone,  // a new one (after a kept-alive one failed)
  // A kept-alive one, as it is, for a request that can be sent again on a new connection
  // if the peer closed it meanwhile (RFC 9110 §9.2.2): the failed attempt finds out, so
  // the common request costs no system call to check.
  kAsIs,
  // A kept-alive one the peer has not closed, checked on its socket (a system call): for
  // a request that cannot be sent again.
  kChecked,
};

// What UpstreamPool::Acquire found: a kept-alive connection, or the connect of a new one
// to await (it views Acquire's `tls` and `ec`: await it at once).
struct Acquired {
  std::unique_ptr<UpstreamConnection> idle;
  std::optional<boost::asio::awaitable<std::unique_ptr<UpstreamConnection>>> connect;  // when `idle` is null
};

class UpstreamPool {
 public:
  static constexpr size_t kMaxIdlePerEndpoint = 64;

  explicit UpstreamPool(boost::asio::any_io_executor executor);
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // A kept-alive connection to host:port not idle longer than `idle_timeout`, as `reuse`
  // allows, found without a coroutine (most requests find one); else a new one, connected
  // within `connect_timeout`. With `tls`, the connection is mTLS to exactly that identity
  // (a new one completes its handshake within `connect_timeout` too). The connect yields
  // nullptr and `ec` on failure (see ConnectUpstream; a failed handshake's TLS error).
  Acquired Acquire(const std::string& host, uint16_t port, std::chrono::milliseconds connect_timeout,
                   std::chrono::milliseconds idle_timeout, Reuse reuse, boost::beast::error_code& ec,
                   const TlsOrigination* tls = nullptr);

  // After a kept-alive connection to `key` (its PoolKey) turned out closed by the peer:
  // closes the endpoint's other idle connections the peer closed too (a server's idle
  // timeout usually closes them all), so that the next requests do not find them one by one.
  void DropClosed(const std::string& key);

  // ConnectUpstream on the pool's executor, a connection of the caller's own (never pooled).
  // For the TCP proxy and its tunnels.
  boost::asio::awaitable<std::unique_ptr<UpstreamConnection>> Connect(
      const std::string& host, uint16_t port, std::chrono::milliseconds timeout,
      boost::beast::error_code& ec, const TlsOrigination* tls = nullptr);

  // Keeps a connection whose last exchange ended cleanly for reuse, for its idle timeout
  // (set by Acquire). A connection with unparsed bytes in its buffer is closed instead:
  // they would be read as the next request's response.
  void Release(std::unique_ptr<UpstreamConnection> connection);

  size_t idle() const;
  // Endpoints with idle connections.
  size_t endpoints() const;

 private:
  // Acquire's new connection, pooled under `key` when released.
  boost::asio::awaitable<std::unique_ptr<UpstreamConnection>> ConnectNew(
      std::string key, std::string host, uint16_t port, std::chrono::milliseconds connect_timeout,
      std::chrono::milliseconds idle_timeout, boost::beast::error_code& ec, const TlsOrigination* tls);
  // Closes connections past their idle timeout or closed by the peer, drops endpoints
  // left without any, and re-arms the timer for the next expiry.
  void Sweep();
  void ArmSweep(std::chrono::steady_clock::time_point when);

  boost::asio::any_io_executor executor_;
  std::map<std::string, std::deque<std::unique_ptr<UpstreamConnection>>, std::less<>> idle_;
  boost::asio::steady_timer sweep_timer_;
  std::chrono::steady_clock::time_point sweep_at_ = std::chrono::steady_clock::time_point::max();
  // Expires with the pool, so that a sweep handler that runs after it does nothing.
  std::shared_ptr<UpstreamPool*> self_;
};

// Whether a request may be sent again on a new connection after a kept-alive one failed
// before any response byte (RFC 9110 §9.2.2): both users of the pool follow this rule.
inline bool Idempotent(boost::beast::http::verb method) {
  using boost::beast::http::verb;
  return method == verb::get || method == verb::head || method == verb::options || method == verb::trace ||
         method == verb::put || method == verb::delete_;
}

}  // namespace meshplug::net
