// Reconnect delays: exponential, bounded, jittered, so that many clients that lost the
// same server do not all come back at once (the agent's xDS client, the xDS load
// generator's simulated agents).
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace meshplug {

// The agent's defaults (--xds_backoff_base, --xds_backoff_max).
inline constexpr std::chrono::milliseconds kBackoffBase{100};
inline constexpr std::chrono::milliseconds kBackoffMax{10'000};

// The reconnect delay after `attempt` failed attempts (0 for the first retry):
// min(max, base × 2^attempt) scaled by `unit` ∈ [0, 1) into its upper half (50–100 %).
std::chrono::milliseconds BackoffDelay(int attempt, std::chrono::milliseconds base, std::chrono::milliseconds max,
                                       double unit);

// One client's reconnect delays: BackoffDelay of the attempts that failed in a row, with
// the client's own jitter.
class Backoff {
 public:
  Backoff(std::chrono::milliseconds base, std::chrono::milliseconds max, uint64_t seed)
      : base_(base), max_(max), rng_(seed) {}
  // The delay before the next attempt; counts one more failed attempt.
  std::chrono::milliseconds Next();
  // An attempt succeeded: the next delay starts from `base` again.
  void Reset() { attempt_ = 0; }

 private:
  std::chrono::milliseconds base_, max_;
  int attempt_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace meshplug
