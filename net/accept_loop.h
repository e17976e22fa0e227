// Accept loops: a connection limit per listener, and pacing after a failed accept (EMFILE,
// ENFILE, ENOBUFS): the next try waits, 5 ms doubling up to 1 s, so a listener out of
// descriptors does not spin a core; a successful accept resets the wait.
#pragma once

#include <algorithm>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <memory>

#include "net/connection_limit.h"

namespace meshplug::net {

class AcceptBackoff {
 public:
  boost::asio::awaitable<void> AfterError() {
    boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor, delay_);
    boost::system::error_code ec;
    co_await timer.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    delay_ = std::min(delay_ * 2, kMax);
  }
  void AfterSuccess() { delay_ = kFirst; }

 private:
  static constexpr std::chrono::milliseconds kFirst{5};
  static constexpr std::chrono::milliseconds kMax{1000};
  std::chrono::milliseconds delay_ = kFirst;
};

// Accepts connections from `acceptor` until it closes, each on the executor
// `pick_executor()` returns, and hands each with its slot of `limit` to
// `serve(socket, slot)`. A connection beyond the limit is closed at once; accept errors
// back off.
template <typename PickExecutor, typename Serve>
boost::asio::awaitable<void> AcceptConnections(std::shared_ptr<boost::asio::ip::tcp::acceptor> acceptor,
                                               std::shared_ptr<ConnectionLimit> limit, PickExecutor pick_executor,
                                               Serve serve) {
  AcceptBackoff backoff;
  while (acceptor->is_open()) {
    boost::system::error_code ec;
    boost::asio::ip::tcp::socket socket =
        co_await acceptor->async_accept(pick_executor(), boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    if (ec == boost::asio::error::operation_aborted || !acceptor->is_open()) break;
    if (ec) {  // e.g. EMFILE: a later accept may succeed
      co_await backoff.AfterError();
      continue;
    }
    backoff.AfterSuccess();
    std::shared_ptr<void> slot = limit->TryAcquire();
    if (!slot) {
      socket.close(ec);
      continue;
    }
    serve(std::move(socket), std::move(slot));
  }
}

}  // namespace meshplug::net
