#include "agent/proxy/http2_common.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
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
          last_touch = Clock::now();
          watch.Touch();
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
  EXPECT_LT(*quiet_at - last_touch, 5s);
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
        co_await asio::post(asio::use_awaitable);  // the first has begun to wait
        watch.Stop();
        second = co_await watch.Quiet(1h, [] { return false; });
      },
      asio::detached);
  io.run_for(10s);
  EXPECT_EQ(first, false);
  EXPECT_EQ(second, false);
}

// A Notify with nobody waiting does not end the next wait early; one during a wait ends it
// at once (true), long before its deadline.
TEST(SignalTest, NotifyWakesTheWaiterOnly) {
  asio::io_context io;
  Signal signal(io.get_executor());
  std::optional<bool> woken;
  Clock::duration waited{};
  signal.Notify();
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        const Clock::time_point start = Clock::now();
        woken = co_await signal.Wait(start + 1h);
        waited = Clock::now() - start;
      },
      asio::detached);
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await asio::post(asio::use_awaitable);  // the first has begun to wait
        EXPECT_TRUE(signal.waiting());
        signal.Notify();
      },
      asio::detached);
  io.run_for(10s);
  EXPECT_EQ(woken, true);
  EXPECT_LT(waited, 5s);
  EXPECT_FALSE(signal.waiting());

  // Not notified: the deadline ends the wait (false).
  std::optional<bool> timed_out;
  io.restart();
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { timed_out = co_await signal.Wait(Clock::now() + 10ms); }, asio::detached);
  io.run_for(10s);
  EXPECT_EQ(timed_out, false);
}

}  // namespace
}  // namespace meshplug::agent::proxy
