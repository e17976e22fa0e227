// What agents accept in a route, which the control plane's validation checks with the
// same values: a route the control plane accepts is one agents take.
#pragma once

#include <re2/re2.h>

#include <chrono>
#include <cstdint>

namespace meshplug {

// Retries after the first attempt, per cluster or route.
inline constexpr uint32_t kMaxRetries = 10;
// The base of the retry backoff when a policy sets none.
inline constexpr std::chrono::milliseconds kDefaultRetryBackoff{25};
// An injected fault's delay; its abort is an error status.
inline constexpr std::chrono::hours kMaxFaultDelay{1};
inline constexpr uint32_t kMinFaultStatus = 400, kMaxFaultStatus = 599;

// How every route pattern (paths, header values) is compiled: RE2, linear time and
// bounded memory, unlike a backtracking matcher.
inline re2::RE2::Options RouteRegexOptions() {
  re2::RE2::Options options;
  options.set_log_errors(false);
  options.set_max_mem(1 << 20);  // per regex; a pattern needing more fails to compile
  return options;
}

}  // namespace meshplug
