// `meshctl tap`: a live stream of request summaries from one agent. Requests publish a
// summary when they end, only while someone taps (one relaxed atomic load otherwise);
// each subscriber filters, samples and is held to a rate (at most kMaxPerSecond), and its
// queue is bounded, so a tap can never slow the data path or grow without limit.
//
// A summary has no headers, no query string and no body: those may hold secrets.
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "plugins/api/traffic_labels.h"

namespace meshplug::agent::proxy {

// What a subscriber wants to see; the query string of /tap on the admin endpoint.
struct TapFilter {
  std::string path_prefix;  // "" for every path
  std::string method;       // "" for every method
  double sample = 1.0;      // the share of matching requests shown (0, 1]
  uint32_t max_per_second = 100;
};

// The parts of a finished request a summary shows.
struct TapRecord {
  bool inbound = false;
  std::string_view method, authority, path;  // path without its query string
  unsigned status = 0;                       // 0: no response was made
  double seconds = 0;
  plugins::TrafficParties parties;
  std::string_view route;
  std::string_view peer;  // the upstream endpoint (outbound) or the caller's identity (inbound)
  std::vector<std::string_view> plugins;  // whose request steps ran, in chain order
  std::string_view answered_by;           // the plugin that answered itself, if one did
};

class TapHub {
 public:
  static constexpr uint32_t kMaxPerSecond = 1000;
  static constexpr size_t kQueueLimit = 1024;

  class Subscription : public std::enable_shared_from_this<Subscription> {
   public:
    Subscription(TapFilter filter, boost::asio::any_io_executor executor);
    // Waits (on the subscriber's executor) until a summary is queued or `deadline`.
    boost::asio::steady_timer& wake() { return wake_; }
    // The queued summaries (JSON lines), emptying the queue.
    std::deque<std::string> Take();

   private:
    friend class TapHub;
    // False when the rate cap or the full queue leaves `json` out.
    bool Offer(const TapRecord& record, const std::string& json, std::chrono::steady_clock::time_point now);

    const TapFilter filter_;
    boost::asio::steady_timer wake_;
    std::mutex mu_;
    std::deque<std::string> queue_;
    double tokens_;
    std::chrono::steady_clock::time_point refilled_;
  };

  // Cheap enough for every request: whether anyone taps.
  bool active() const { return subscribers() > 0; }
  int subscribers() const { return subscribers_.load(std::memory_order_relaxed); }
  // Summaries the rate caps and full queues left out since the agent started.
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  std::shared_ptr<Subscription> Subscribe(TapFilter filter, boost::asio::any_io_executor executor);
  void Unsubscribe(const std::shared_ptr<Subscription>& subscription);
  void Publish(const TapRecord& record);

  // One summary as the JSON line /tap sends.
  static std::string Json(const TapRecord& record);

 private:
  std::mutex mu_;
  std::vector<std::shared_ptr<Subscription>> subscriptions_;
  std::atomic<int> subscribers_{0};
  std::atomic<uint64_t> dropped_{0};
};

}  // namespace meshplug::agent::proxy
