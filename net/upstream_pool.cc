#include "net/upstream_pool.h"

#include <sys/socket.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <algorithm>
#include <cerrno>

#include "common/strings.h"

namespace meshplug::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// An idle connection is usable when the peer has neither closed it nor sent anything.
bool StillOpen(UpstreamConnection& c) {
  char byte;
  ssize_t n = ::recv(c.stream.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

Clock::time_point Expiry(const UpstreamConnection& c) { return c.idle_since + c.idle_timeout; }

}  // namespace

// async_resolve cannot be interrupted while getaddrinfo runs, so the lookup races a timer
// and a late answer lands in shared state that nobody reads any more.
asio::awaitable<tcp::resolver::results_type> ResolveUpstream(const std::string& host,
                                                            uint16_t port,
                                                            Clock::time_point deadline,
                                                            beast::error_code& ec) {
  ec = {};
  beast::error_code not_literal;
  const asio::ip::address address = asio::ip::make_address(host, not_literal);
  if (!not_literal) {
    co_return tcp::resolver::results_type::create(tcp::endpoint(address, port), host,
                                                  std::to_string(port));
  }
  struct Race {
    explicit Race(const asio::any_io_executor& ex) : timer(ex), resolver(ex) {}
    asio::steady_timer timer;
    tcp::resolver resolver;
    tcp::resolver::results_type results;
    beast::error_code ec;
    bool done = false;
  };
  auto race = std::make_shared<Race>(co_await asio::this_coro::executor);
  race->timer.expires_at(deadline);
  race->resolver.async_resolve(
      host, std::to_string(port),
      [race](beast::error_code resolve_ec, tcp::resolver::results_type results) {
        race->ec = resolve_ec;
        race->results = std::move(results);
        race->done = true;
        race->timer.cancel();
      });
  beast::error_code ignored;
  co_await race->timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  if (!race->done) {
    race->resolver.cancel();
    ec = beast::error::timeout;
    co_return tcp::resolver::results_type{};
  }
  ec = race->ec;
  co_return race->results;
}

asio::awaitable<std::unique_ptr<UpstreamConnection>> ConnectUpstream(
    asio::any_io_executor executor, const std::string& host, uint16_t port,
    std::chrono::milliseconds timeout, beast::error_code& ec, const TlsOrigination* tls) {
  const Clock::time_point deadline = Clock::now() + timeout;
  const auto endpoints = co_await ResolveUpstream(host, port, deadline, ec);
  if (ec) co_return nullptr;
  auto c = std::make_unique<UpstreamConnection>(executor);
  c->stream.expires_at(deadline);
  co_await c->stream.async_connect(endpoints, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return nullptr;
  c->stream.socket().set_option(tcp::no_delay(true), ec);
  ec = {};
  if (tls) {
    co_await ClientHandshake(c->stream, *tls, ec);
    if (ec) co_return nullptr;
  }
  c->stream.expires_never();
  co_return c;
}

std::string PoolKey(const std::string& host, uint16_t port, const TlsOrigination* tls) {
  if (!tls) return Cat(host, ":", port);
  return Cat(host, ":", port, " ", tls->expected_identity, " ", reinterpret_cast<uintptr_t>(tls->context.get()));
}

UpstreamPool::UpstreamPool(asio::any_io_executor executor)
    : executor_(std::move(executor)),
      sweep_timer_(executor_),
      self_(std::make_shared<UpstreamPool*>(this)) {}

Acquired UpstreamPool::Acquire(const std::string& host, uint16_t port, std::chrono::milliseconds connect_timeout,
                               std::chrono::milliseconds idle_timeout, Reuse reuse, beast::error_code& ec,
                               const TlsOrigination* tls) {
  ec = {};
  std::string key = PoolKey(host, port, tls);
  auto it = reuse != Reuse::kNone ? idle_.find(key) : idle_.end();
  if (it != idle_.end()) {
    auto& list = it->second;
    auto oldest_allowed = Clock::now() - idle_timeout;
    // Most recently used first: it is the least likely to have been closed by the peer.
    while (!list.empty()) {
      std::unique_ptr<UpstreamConnection> c = std::move(list.back());
      list.pop_back();
      if (c->idle_since >= oldest_allowed && (reuse == Reuse::kAsIs || StillOpen(*c))) {
        // An endpoint's entry stays while it is briefly empty: Release puts the connection
        // back into the same storage instead of allocating the entry anew per request. The
        // sweep forgets entries left empty.
        if (list.empty() && sweep_at_ == Clock::time_point::max()) ArmSweep(Clock::now() + idle_timeout);
        c->idle_timeout = idle_timeout;
        return {std::move(c), std::nullopt};
      }
    }
    idle_.erase(it);
  }
  return {nullptr, ConnectNew(std::move(key), host, port, connect_timeout, idle_timeout, ec, tls)};
}

asio::awaitable<std::unique_ptr<UpstreamConnection>> UpstreamPool::ConnectNew(
    std::string key, std::string host, uint16_t port, std::chrono::milliseconds connect_timeout,
    std::chrono::milliseconds idle_timeout, beast::error_code& ec, const TlsOrigination* tls) {
  auto c = co_await ConnectUpstream(executor_, host, port, connect_timeout, ec, tls);
  if (c) {
    c->key = std::move(key);
    c->idle_timeout = idle_timeout;
  }
  co_return c;
}

asio::awaitable<std::unique_ptr<UpstreamConnection>> UpstreamPool::Connect(
    const std::string& host, uint16_t port, std::chrono::milliseconds timeout,
    beast::error_code& ec, const TlsOrigination* tls) {
  return ConnectUpstream(executor_, host, port, timeout, ec, tls);
}

void UpstreamPool::Release(std::unique_ptr<UpstreamConnection> connection) {
  if (connection->buffer.size() != 0 || connection->idle_timeout.count() <= 0) return;
  connection->stream.expires_never();
  connection->idle_since = Clock::now();
  Clock::time_point expiry = Expiry(*connection);
  auto& list = idle_[connection->key];
  if (list.size() >= kMaxIdlePerEndpoint) list.pop_front();
  list.push_back(std::move(connection));
  if (expiry < sweep_at_) ArmSweep(expiry);
}

void UpstreamPool::DropClosed(const std::string& key) {
  if (auto it = idle_.find(key); it != idle_.end()) {
    std::erase_if(it->second, [](const std::unique_ptr<UpstreamConnection>& c) { return !StillOpen(*c); });
  }
}

void UpstreamPool::ArmSweep(Clock::time_point when) {
  sweep_at_ = when;
  sweep_timer_.expires_at(when);  // cancels the wait for a later expiry, if any
  sweep_timer_.async_wait([self = std::weak_ptr<UpstreamPool*>(self_)](beast::error_code ec) {
    std::shared_ptr<UpstreamPool*> pool = self.lock();
    if (ec || !pool) return;
    (*pool)->Sweep();
  });
}

void UpstreamPool::Sweep() {
  Clock::time_point now = Clock::now();
  Clock::time_point next = Clock::time_point::max();
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& list = it->second;
    std::erase_if(list, [&](const std::unique_ptr<UpstreamConnection>& c) {
      return Expiry(*c) <= now || !StillOpen(*c);
    });
    for (const auto& c : list) next = std::min(next, Expiry(*c));
    it = list.empty() ? idle_.erase(it) : std::next(it);
  }
  sweep_at_ = Clock::time_point::max();
  if (next != Clock::time_point::max()) ArmSweep(next);
}

size_t UpstreamPool::endpoints() const {
  return static_cast<size_t>(
      std::count_if(idle_.begin(), idle_.end(), [](const auto& entry) { return !entry.second.empty(); }));
}

size_t UpstreamPool::idle() const {
  size_t n = 0;
  for (const auto& [key, list] : idle_) n += list.size();
  return n;
}

}  // namespace meshplug::net
