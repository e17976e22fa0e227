// One ADS stream's I/O on a completion queue of its own: requests go out one at a time in
// the order they were queued, responses come back one by one, and the stream ends when
// either side closes it. It knows nothing of what the messages mean.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <deque>
#include <memory>

#include "envoy/service/discovery/v3/ads.grpc.pb.h"

namespace meshplug::agent::xds {

// gRPC takes system_clock deadlines; our timers are steady.
inline std::chrono::system_clock::time_point ToSystemClock(std::chrono::steady_clock::time_point t) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(t - std::chrono::steady_clock::now());
}

// `Proto` is DeltaOps or SotwOps (protocol.h).
template <typename Proto>
class AdsStream {
 public:
  using Req = typename Proto::Req;
  using Resp = typename Proto::Resp;
  using Clock = std::chrono::steady_clock;

  explicit AdsStream(const std::shared_ptr<grpc::Channel>& channel)
      : stub_(envoy::service::discovery::v3::AggregatedDiscoveryService::NewStub(channel)),
        rw_(Proto::Prepare(*stub_, &context_, &cq_)) {
    rw_->StartCall(Tag(kStart));
    ++outstanding_;
  }

  ~AdsStream() {
    if (!finished_) context_.TryCancel();
    // Every operation started must complete before the queue and the call go away.
    while (!(finished_ && outstanding_ == 0)) {
      if (Pump(Clock::now() + std::chrono::seconds(1)) == Wait::kShutdown) break;
    }
    cq_.Shutdown();
    void* tag = nullptr;
    bool ok = false;
    while (cq_.Next(&tag, &ok)) {
    }
  }
  AdsStream(const AdsStream&) = delete;
  AdsStream& operator=(const AdsStream&) = delete;

  // Ends the stream from any thread; Next() then returns kClosed.
  grpc::ClientContext& context() { return context_; }

  void Send(Req request) {
    outbox_.push_back(std::move(request));
    Flush();
  }

  enum class Event { kResponse, kTimeout, kClosed };
  // Waits until a response arrives (into `out`), `deadline` passes or the stream has ended.
  // Once the stream is ending it waits for the end (which comes promptly), so nothing is
  // acted on between a failed read and the stream's status.
  Event Next(Clock::time_point deadline, Resp& out) {
    for (;;) {
      if (finished_) return Event::kClosed;
      switch (Pump(finishing_ ? Clock::now() + std::chrono::seconds(1) : deadline)) {
        case Wait::kTimeout:
          if (finishing_) continue;
          return Event::kTimeout;
        case Wait::kShutdown:
          return Event::kClosed;
        case Wait::kEvent:
          break;
      }
      if (has_response_) {
        has_response_ = false;
        out = std::move(incoming_);
        StartRead();
        return Event::kResponse;
      }
    }
  }

  // Why the stream ended (after Next returned kClosed).
  const grpc::Status& status() const { return status_; }

 private:
  enum Op : intptr_t { kStart = 1, kRead, kWrite, kFinish };
  enum class Wait { kEvent, kTimeout, kShutdown };
  static void* Tag(Op op) { return reinterpret_cast<void*>(op); }

  // Waits for one completion until `deadline` and updates the stream's state.
  Wait Pump(Clock::time_point deadline) {
    void* tag = nullptr;
    bool ok = false;
    const auto next = cq_.AsyncNext(&tag, &ok, ToSystemClock(deadline));
    if (next == grpc::CompletionQueue::SHUTDOWN) return Wait::kShutdown;
    if (next == grpc::CompletionQueue::TIMEOUT) return Wait::kTimeout;
    --outstanding_;
    switch (static_cast<Op>(reinterpret_cast<intptr_t>(tag))) {
      case kStart:
        if (ok) {
          started_ = true;
          StartRead();
        } else {
          Fail();
        }
        break;
      case kRead:
        if (ok) {
          has_response_ = true;
        } else {
          Fail();
        }
        break;
      case kWrite:
        writing_ = false;
        if (ok) {
          outbox_.pop_front();
        } else {
          write_failed_ = true;  // the read fails too and ends the stream
        }
        break;
      case kFinish:
        finished_ = true;
        break;
    }
    Flush();
    return Wait::kEvent;
  }

  void StartRead() {
    rw_->Read(&incoming_, Tag(kRead));
    ++outstanding_;
  }

  // A read or the start failed: the stream is over; collect its status.
  void Fail() {
    if (finishing_) return;
    finishing_ = true;
    rw_->Finish(&status_, Tag(kFinish));
    ++outstanding_;
  }

  void Flush() {
    if (!started_ || writing_ || write_failed_ || finishing_ || outbox_.empty()) return;
    rw_->Write(outbox_.front(), Tag(kWrite));
    writing_ = true;
    ++outstanding_;
  }

  grpc::ClientContext context_;
  grpc::CompletionQueue cq_;
  std::unique_ptr<envoy::service::discovery::v3::AggregatedDiscoveryService::Stub> stub_;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<Req, Resp>> rw_;
  std::deque<Req> outbox_;
  Resp incoming_;
  grpc::Status status_;
  int outstanding_ = 0;
  bool started_ = false, writing_ = false, write_failed_ = false;
  bool has_response_ = false, finishing_ = false, finished_ = false;
};

}  // namespace meshplug::agent::xds
