// One plain HTTP/1.1 GET with a deadline, for meshctl's reads of agents' /stats and of
// Prometheus's query API.
#pragma once

#include <chrono>
#include <string>

#include "absl/status/statusor.h"

namespace meshplug::cli {

// The body of a 200 answer to GET `target` from `host_port` ("host:port", "[v6]:port"), or
// an error naming the address and what failed (connection, timeout, another status).
absl::StatusOr<std::string> HttpGet(const std::string& host_port, const std::string& target,
                                    std::chrono::milliseconds timeout);

// `text` escaped for a URL's query string.
std::string UrlEncode(std::string_view text);

}  // namespace meshplug::cli
