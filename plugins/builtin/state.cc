#include "plugins/builtin/state.h"

#include <algorithm>

#include "agent/routing/mesh_view.h"

namespace meshplug::plugins::builtin {

bool RateLimiters::TryTake(std::string_view key, const v1::RateLimit& limit,
                           Clock::time_point now) {
  double capacity = limit.burst() > 0 ? limit.burst() : limit.requests();
  auto per = agent::routing::DurationOr(limit.per(), limit.has_per(), std::chrono::seconds(1));
  double rate = per.count() > 0 ? limit.requests() * 1000.0 / per.count() : 0;  // per second
  std::lock_guard lock(mu_);
  auto it = buckets_.find(key);
  if (it == buckets_.end()) it = buckets_.emplace(std::string(key), Bucket{capacity, now}).first;
  Bucket& b = it->second;
  double elapsed = std::chrono::duration<double>(now - b.refilled).count();
  b.tokens = std::min(capacity, b.tokens + elapsed * rate);
  b.refilled = now;
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

bool CircuitBreakers::IsOpen(std::string_view cluster, Clock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = breakers_.find(cluster);
  return it != breakers_.end() && now < it->second.open_until;
}

void CircuitBreakers::Record(std::string_view cluster, const v1::CircuitBreaker& config,
                             bool error, bool slow, Clock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = breakers_.find(cluster);
  if (it == breakers_.end()) it = breakers_.emplace(std::string(cluster), Breaker{}).first;
  Breaker& b = it->second;
  b.errors = error ? b.errors + 1 : 0;
  b.slow = slow ? b.slow + 1 : 0;
  bool trip = (config.consecutive_errors() > 0 && b.errors >= config.consecutive_errors()) ||
              (config.consecutive_slow() > 0 && b.slow >= config.consecutive_slow());
  if (trip) {
    b.open_until = now + agent::routing::DurationOr(config.open_duration(), config.has_open_duration(),
                                    std::chrono::seconds(30));
    b.errors = b.slow = 0;
  }
}

}  // namespace meshplug::plugins::builtin
