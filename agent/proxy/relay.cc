#include "agent/proxy/relay.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <exception>

namespace meshplug::agent::proxy {
namespace {

namespace asio = boost::asio;
using asio::awaitable;
using plugins::Direction;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

auto Ec(boost::system::error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

constexpr size_t kPieceBytes = 64 * 1024;

// The state the two pumps and the watchdog share, all on one worker thread.
class Relaying {
 public:
  Relaying(net::Stream& downstream, net::Stream& upstream, RelayTimeouts timeouts, PieceStep step)
      : downstream_(downstream), upstream_(upstream), timeouts_(timeouts), step_(std::move(step)),
        watchdog_(downstream.get_executor()) {}

  awaitable<RelayEnd> Run(std::string from_downstream, std::string from_upstream) {
    last_activity_ = Clock::now();
    // Sibling coroutines (Boost 1.74 has no awaitable operators); `all_done` wakes when the
    // last one ends.
    auto executor = downstream_.get_executor();
    asio::steady_timer all_done(executor, asio::steady_timer::time_point::max());
    int running = 3;
    auto finished = [&](std::exception_ptr) {
      if (--running == 0) all_done.cancel();
    };
    asio::co_spawn(executor, Pump(upstream_, downstream_, Direction::kUpstreamToDownstream, std::move(from_upstream)),
                   finished);
    asio::co_spawn(executor, Pump(downstream_, upstream_, Direction::kDownstreamToUpstream, std::move(from_downstream)),
                   finished);
    asio::co_spawn(executor, Watch(), finished);
    boost::system::error_code ec;
    if (running > 0) co_await all_done.async_wait(Ec(ec));
    co_return timed_out_ ? RelayEnd::kTimedOut : RelayEnd::kEnded;
  }

 private:
  // Copies `from` to `to` (`data` first) until `from` ends, then half-closes `to`. An
  // error or the step's no resets both.
  awaitable<void> Pump(net::Stream& from, net::Stream& to, Direction direction, std::string data) {
    boost::system::error_code ec;
    while (true) {
      if (data.empty()) {
        data.resize(kPieceBytes);
        size_t n = co_await from.async_read_some(asio::buffer(data), Ec(ec));
        if (ec) break;
        data.resize(n);
      }
      last_activity_ = Clock::now();
      if (step_) {
        bool go_on = false;
        try {
          go_on = co_await step_(direction, data);
        } catch (...) {
          // A step that fails ends the relay like one that says no.
        }
        if (!go_on) {
          ec = asio::error::operation_aborted;
          break;
        }
      }
      co_await asio::async_write(to, asio::buffer(data), Ec(ec));
      if (ec) break;
      data.clear();
      last_activity_ = Clock::now();
    }
    boost::system::error_code ignored;
    if (net::EndOfStream(ec)) {
      // Bytes held for the turn's end (a 101's header) go before the FIN.
      if (net::Pending rest = net::Flush(to, ignored)) {
        co_await std::move(*rest);
        to.expires_never();  // the watchdog bounds the relay
      }
      to.socket().shutdown(tcp::socket::shutdown_send, ignored);
      half_closed_ = true;
      last_activity_ = Clock::now();  // the half-close timeout counts from here
    } else {
      // A reset, not a FIN, so that neither end (nor the agent at a tunnel's other end)
      // takes the broken connection for one that ended well.
      for (net::Stream* s : {&from, &to}) {
        s->socket().set_option(asio::socket_base::linger(true, 0), ignored);
        s->socket().close(ignored);
      }
    }
    --pumps_running_;
    watchdog_.cancel();  // the watchdog re-reads the state
  }

  // Closes both once no byte has moved for the idle timeout, or for the half-close
  // timeout after one direction ended; returns when both pumps have ended.
  awaitable<void> Watch() {
    while (pumps_running_ > 0) {
      auto deadline = last_activity_ + (half_closed_ ? timeouts_.half_close : timeouts_.idle);
      if (Clock::now() >= deadline) {
        timed_out_ = true;
        boost::system::error_code ignored;
        upstream_.socket().close(ignored);
        downstream_.socket().close(ignored);
        co_return;
      }
      watchdog_.expires_at(deadline);
      boost::system::error_code ec;
      co_await watchdog_.async_wait(Ec(ec));
    }
  }

  net::Stream& downstream_;
  net::Stream& upstream_;
  const RelayTimeouts timeouts_;
  const PieceStep step_;
  asio::steady_timer watchdog_;
  Clock::time_point last_activity_;
  int pumps_running_ = 2;
  bool half_closed_ = false;
  bool timed_out_ = false;
};

}  // namespace

awaitable<RelayEnd> Relay(net::Stream& downstream, std::string from_downstream, net::Stream& upstream,
                          std::string from_upstream, RelayTimeouts timeouts, PieceStep step) {
  Relaying relaying(downstream, upstream, timeouts, std::move(step));
  co_return co_await relaying.Run(std::move(from_downstream), std::move(from_upstream));
}

}  // namespace meshplug::agent::proxy
