#include "common/backoff.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace meshplug {

using std::chrono::milliseconds;

milliseconds BackoffDelay(int attempt, milliseconds base, milliseconds max, double unit) {
  const double cap = std::min(static_cast<double>(max.count()),
                              static_cast<double>(base.count()) * std::ldexp(1.0, std::clamp(attempt, 0, 62)));
  return milliseconds(std::max<int64_t>(1, static_cast<int64_t>(cap * (0.5 + 0.5 * std::clamp(unit, 0.0, 1.0)))));
}

milliseconds Backoff::Next() {
  const milliseconds delay = BackoffDelay(attempt_, base_, max_, std::uniform_real_distribution<double>(0.0, 1.0)(rng_));
  attempt_ = std::min(attempt_ + 1, 62);
  return delay;
}

}  // namespace meshplug
