// One ADS stream's I/O, driven by the thread that waits on it: requests go out one at a
// time in the order they were queued, responses come back one by one, and the stream ends
// when either side closes it. It knows nothing of what the messages mean.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <deque>
#include <memory>

#include "agent/proxy/http2_common.h"
#include "agent/xds/grpc_call.h"

namespace meshplug::agent::xds {

// `Proto` is DeltaOps or SotwOps (protocol.h).
template <typename Proto>
class AdsStream {
 public:
  using Req = typename Proto::Req;
  using Resp = typename Proto::Resp;
  using Clock = std::chrono::steady_clock;

  // Runs `call` on `io`, which only Next and the destructor run. Stopping `io` (from any
  // thread) ends the stream: Next returns kClosed.
  AdsStream(boost::asio::io_context& io, std::unique_ptr<GrpcCall> call)
      : io_(io), call_(std::move(call)), outbox_wake_(io.get_executor()), loops_(2) {
    boost::asio::co_spawn(io_, ReadLoop(), boost::asio::detached);
    boost::asio::co_spawn(io_, WriteLoop(), boost::asio::detached);
  }

  ~AdsStream() {
    call_->Cancel();
    outbox_wake_.Notify();
    // Both loops use this object: they end first (promptly, once cancelled). Should `io` be
    // stopped again meanwhile (the client is stopping), they are left suspended, and the
    // loop is never run again.
    io_.restart();
    const auto bound = Clock::now() + std::chrono::seconds(5);
    while (loops_ > 0 && io_.run_one_until(bound) > 0) {
    }
  }
  AdsStream(const AdsStream&) = delete;
  AdsStream& operator=(const AdsStream&) = delete;

  void Send(Req request) {
    outbox_.push_back(std::move(request));
    outbox_wake_.Notify();
  }

  enum class Event { kResponse, kTimeout, kClosed };
  // Waits until a response arrives (into `out`), `deadline` passes or the stream has ended.
  Event Next(Clock::time_point deadline, Resp& out) {
    for (;;) {
      if (!inbox_.empty()) {
        out = std::move(inbox_.front());
        inbox_.pop_front();
        return Event::kResponse;
      }
      if (call_->ended() || io_.stopped()) return Event::kClosed;
      if (Clock::now() >= deadline) return Event::kTimeout;
      io_.run_one_until(deadline);
    }
  }

  // Why the stream ended (after Next returned kClosed); CANCELLED when `io` was stopped.
  absl::Status status() const { return call_->ended() ? call_->status() : absl::CancelledError("stopped"); }

 private:
  boost::asio::awaitable<void> ReadLoop() {
    Resp incoming;
    // No co_await inside a condition: GCC 12 miscompiles it (see agent/proxy/tcp_proxy.cc).
    for (;;) {
      const bool got = co_await call_->Read(incoming);
      if (!got) break;
      inbox_.push_back(std::move(incoming));
    }
    --loops_;
  }

  boost::asio::awaitable<void> WriteLoop() {
    while (!call_->ended()) {
      if (outbox_.empty()) {
        co_await outbox_wake_.Wait(Clock::time_point::max());
        continue;
      }
      // After a failed write the read loop learns how the call ended.
      const absl::Status written = co_await call_->Write(outbox_.front(), /*last=*/false);
      if (!written.ok()) break;
      outbox_.pop_front();
    }
    --loops_;
  }

  boost::asio::io_context& io_;
  std::unique_ptr<GrpcCall> call_;
  std::deque<Req> outbox_;
  proxy::Signal outbox_wake_;
  std::deque<Resp> inbox_;
  int loops_;  // running (or yet to start): the destructor waits for them
};

}  // namespace meshplug::agent::xds
