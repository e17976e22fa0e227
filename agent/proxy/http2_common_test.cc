#include "agent/proxy/http2_common.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <optional>

namespace meshplug::agent::proxy {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

asio::awaitable<void> Sleep(Clock::duration d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(asio::use_awaitable);
}

// Streams that begin and end keep a connection from idling out; so does work still
// running when the timeout passes. Quiet comes only after the idle time past the last.
TEST(IdleWatchTest, QuietOnlyAfterTheIdleTimePastTheLastStreamAndWork) {
  asio::io_context io;
  IdleWatch watch(io.get_executor());
  bool busy = true;
  Clock::time_point last_touch;
  std::optional<Clock::time_point> quiet_at;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 5; ++i) {
          co_await Sleep(20ms);
          watch.Touch();
          last_touch = Clock::now();
        }
        co_await Sleep(150ms);  // past the idle time, still busy
        busy = false;
      },
      asio::detached);
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        if (co_await watch.Quiet(100ms, [&] { return busy; })) quiet_at = Clock::now();
      },
      asio::detached);
  io.run_for(10s);
  ASSERT_TRUE(quiet_at.has_value());
  // Busy when the idle time first passed after the last touch: one more idle time.
  EXPECT_GE(*quiet_at - last_touch, 200ms);
}

// A connection that ends stops the wait, also when it ends before anyone waits.
TEST(IdleWatchTest, StopEndsTheWait) {
  asio::io_context io;
  IdleWatch watch(io.get_executor());
  std::optional<bool> first, second;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> { first = co_await watch.Quiet(1h, [] { return false; }); },
                 asio::detached);
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await Sleep(10ms);
        watch.Stop();
        second = co_await watch.Quiet(1h, [] { return false; });
      },
      asio::detached);
  io.run_for(10s);
  EXPECT_EQ(first, false);
  EXPECT_EQ(second, false);
}

}  // namespace
}  // namespace meshplug::agent::proxy
