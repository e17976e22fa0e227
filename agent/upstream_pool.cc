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

// An idle connection is usable when the peer has neither closed it nor sent anything.
bool StillOpen(UpstreamConnection& c) {
  char byte;
  ssize_t n = ::recv(c.stream.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

net::awaitable<std::unique_ptr<UpstreamConnection>> UpstreamPool::Acquire(
    const std::string& host, uint16_t port, std::chrono::milliseconds connect_timeout,
    std::chrono::milliseconds idle_timeout, bool& reused, beast::error_code& ec) {
  std::string key = builtin::Cat(host, ":", port);
  auto it = idle_.find(key);
  if (it != idle_.end()) {
    auto& list = it->second;
    auto oldest_allowed = std::chrono::steady_clock::now() - idle_timeout;
    // Most recently used first: it is the least likely to have been closed by the peer.
    while (!list.empty()) {
      std::unique_ptr<UpstreamConnection> c = std::move(list.back());
      list.pop_back();
      if (c->idle_since >= oldest_allowed && StillOpen(*c)) {
        reused = true;
        co_return c;
      }
    }
    idle_.erase(it);
  }
  reused = false;
  auto c = co_await Connect(host, port, connect_timeout, ec);
  if (c) c->key = std::move(key);
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
  connection->stream.expires_never();
  connection->idle_since = std::chrono::steady_clock::now();
  auto& list = idle_[connection->key];
  if (list.size() >= kMaxIdlePerEndpoint) list.pop_front();
  list.push_back(std::move(connection));
}

size_t UpstreamPool::idle() const {
  size_t n = 0;
  for (const auto& [key, list] : idle_) n += list.size();
  return n;
}

}  // namespace meshplug::agent
