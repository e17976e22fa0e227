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

}  // namespace meshplug
