// Plain HTTP/1.1 GETs with deadlines: meshctl and the control plane read agents' /stats, /tap and
// Prometheus's query API with them.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace meshplug::net {

// The body of a 200 answer to GET `target` from `host_port` ("host:port", "[v6]:port"), or
// an error naming the address and what failed (connection, timeout, another status).
absl::StatusOr<std::string> HttpGet(const std::string& host_port, const std::string& target,
                                    std::chrono::milliseconds timeout);

// GET `target` with `Authorization: Bearer <bearer>` and hands each line of a 200 answer to
// `on_line` as it arrives, until the server ends it; an error names what failed (and
// carries the body of another status). `connect_timeout` bounds reaching the server and
// reading the answer's header.
absl::Status HttpStreamLines(const std::string& host_port, const std::string& target, const std::string& bearer,
                             const std::function<void(std::string_view line)>& on_line,
                             std::chrono::milliseconds connect_timeout);

// `text` escaped for a URL's query string.
std::string UrlEncode(std::string_view text);

}  // namespace meshplug::net
