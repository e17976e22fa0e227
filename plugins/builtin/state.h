// State of the built-in modules that must survive chain set swaps: metrics, circuit
// breakers, token buckets and the access log sink. Owned by the agent; thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "meshplug/v1/snapshot.pb.h"
#include "common/stats.h"

namespace meshplug::plugins::builtin {

using Clock = std::chrono::steady_clock;

// Token buckets keyed by what they limit ("service" or "service/route").
class RateLimiters {
 public:
  // True when a token was taken; a bucket starts full.
  bool TryTake(std::string_view key, const meshplug::v1::RateLimit& limit, Clock::time_point now);

 private:
  struct Bucket {
    double tokens = 0;
    Clock::time_point refilled;
  };
  std::mutex mu_;
  std::map<std::string, Bucket, std::less<>> buckets_;
};

// Per-cluster breakers that open after consecutive errors or slow responses.
class CircuitBreakers {
 public:
  bool IsOpen(std::string_view cluster, Clock::time_point now);
  void Record(std::string_view cluster, const meshplug::v1::CircuitBreaker& config, bool error,
              bool slow, Clock::time_point now);

 private:
  struct Breaker {
    uint32_t errors = 0;
    uint32_t slow = 0;
    Clock::time_point open_until;
  };
  std::mutex mu_;
  std::map<std::string, Breaker, std::less<>> breakers_;
};

struct BuiltinState {
  explicit BuiltinState(Stats& stats) : stats(stats) {}
  Stats& stats;  // the agent's, which /stats renders
  RateLimiters limiters;
  CircuitBreakers breakers;
  // Receives one JSON access log line per request (no trailing newline).
  std::function<void(std::string_view)> access_log;
};

}  // namespace meshplug::plugins::builtin
