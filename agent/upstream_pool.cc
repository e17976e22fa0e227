#include "agent/upstream_pool.h"

#include <sys/socket.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>

#include "plugins/builtin/text.h"

namespace meshplug::agent {
namespace {

using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

// An idle connection is usable when the peer has neither closed it nor sent anything.
bool StillOpen(UpstreamConnection& c) {
  char byte;
  ssize_t n = ::recv(c.stream.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

Clock::time_point Expiry(const UpstreamConnection& c) { return c.idle_since + c.idle_timeout; }

}  // namespace

UpstreamPool::UpstreamPool(net::any_io_executor executor)
    : executor_(std::move(executor)),
      sweep_timer_(executor_),
      self_(std::make_shared<UpstreamPool*>(this)) {}

net::awaitable<std::unique_ptr<UpstreamConnection>> UpstreamPool::Acquire(
    const std::string& host, uint16_t port, std::chrono::milliseconds connect_timeout,
    std::chrono::milliseconds idle_timeout, bool allow_reuse, bool& reused,
    beast::error_code& ec) {
  std::string key = builtin::Cat(host, ":", port);
  auto it = allow_reuse ? idle_.find(key) : idle_.end();
  if (it != idle_.end()) {
    auto& list = it->second;
    auto oldest_allowed = Clock::now() - idle_timeout;
    // Most recently used first: it is the least likely to have been closed by the peer.
    while (!list.empty()) {
      std::unique_ptr<UpstreamConnection> c = std::move(list.back());
      list.pop_back();
      if (c->idle_since >= oldest_allowed && StillOpen(*c)) {
        if (list.empty()) idle_.erase(it);
        c->idle_timeout = idle_timeout;
        reused = true;
        co_return c;
      }
    }
    idle_.erase(it);
  }
  reused = false;
  auto c = co_await Connect(host, port, connect_timeout, ec);
  if (c) {
    c->key = std::move(key);
    c->idle_timeout = idle_timeout;
  }
  co_return c;
}

net::awaitable<std::unique_ptr<UpstreamConnection>> UpstreamPool::Connect(
    const std::string& host, uint16_t port, std::chrono::milliseconds timeout,
    beast::error_code& ec) {
  auto c = std::make_unique<UpstreamConnection>(executor_);
  c->stream.expires_after(timeout);
  net::ip::address address = net::ip::make_address(host, ec);
  if (!ec) {
    co_await c->stream.async_connect(tcp::endpoint(address, port),
                                     net::redirect_error(net::use_awaitable, ec));
  } else {
    ec = {};
    tcp::resolver resolver(executor_);
    auto results = co_await resolver.async_resolve(host, std::to_string(port),
                                                   net::redirect_error(net::use_awaitable, ec));
    if (!ec) {
      co_await c->stream.async_connect(results, net::redirect_error(net::use_awaitable, ec));
    }
  }
  if (ec) co_return nullptr;
  c->stream.socket().set_option(tcp::no_delay(true), ec);
  ec = {};
  c->stream.expires_never();
  co_return c;
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

size_t UpstreamPool::idle() const {
  size_t n = 0;
  for (const auto& [key, list] : idle_) n += list.size();
  return n;
}

}  // namespace meshplug::agent
