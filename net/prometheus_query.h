// One PromQL instant query against Prometheus's HTTP API, for meshctl stat and the tests.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/traffic_stats.h"

namespace meshplug::net {

// The instant vector `promql` evaluates to at `url` ("http://HOST:PORT" or with a path
// prefix), or an error naming what failed; https is not supported.
absl::StatusOr<std::vector<traffic::Sample>> QueryPrometheus(const std::string& url, const std::string& promql);

}  // namespace meshplug::net
