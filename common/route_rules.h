// What agents accept in a route, which the control plane's validation checks with the
// same values: a route the control plane accepts is one agents take.
#pragma once

#include <re2/re2.h>

#include <cstdint>

namespace meshplug {

// Retries after the first attempt, per cluster or route.
inline constexpr uint32_t kMaxRetries = 10;

// How every route pattern (paths, header values) is compiled: RE2, linear time and
// bounded memory, unlike a backtracking matcher.
inline re2::RE2::Options RouteRegexOptions() {
  re2::RE2::Options options;
  options.set_log_errors(false);
  options.set_max_mem(1 << 20);  // per regex; a pattern needing more fails to compile
  return options;
}

}  // namespace meshplug
