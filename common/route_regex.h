// How every route pattern (paths, header values) is compiled: by agents when they match,
// and by the control plane when it validates, so a pattern it accepts is one agents can
// compile. RE2: linear time and bounded memory, unlike a backtracking matcher.
#pragma once

#include <re2/re2.h>

namespace meshplug {

inline re2::RE2::Options RouteRegexOptions() {
  re2::RE2::Options options;
  options.set_log_errors(false);
  options.set_max_mem(1 << 20);  // per regex; a pattern needing more fails to compile
  return options;
}

}  // namespace meshplug
