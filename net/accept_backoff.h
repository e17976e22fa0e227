// Pacing of accept loops: after a failed accept (EMFILE, ENFILE, ENOBUFS) the next try
// waits, 5 ms doubling up to 1 s, so a listener out of descriptors does not spin a core;
// a successful accept resets the wait.
#pragma once

#include <algorithm>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>

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

}  // namespace meshplug::net
