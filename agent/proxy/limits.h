// Limits and timeouts of the proxy: flag defaults, overridden per snapshot by
// AgentSettings.limits and per cluster by Cluster timeouts.
#pragma once

#include <chrono>
#include <cstdint>

#include "meshplug/v1/snapshot.pb.h"

namespace meshplug::agent::proxy {

using std::chrono::milliseconds;

struct Limits {
  uint32_t max_header_bytes = 16 * 1024;
  uint32_t max_header_count = 100;
  uint64_t max_buffered_body_bytes = 1024 * 1024;
  milliseconds header_read_timeout{10'000};
  milliseconds downstream_idle_timeout{60'000};
  milliseconds connect_timeout{2'000};
  milliseconds request_timeout{15'000};
  milliseconds upstream_idle_timeout{30'000};
  // TCP proxying: a connection with no byte moving either way for this long is closed.
  milliseconds tcp_idle_timeout{3'600'000};
  // Once one direction has ended (half-close), the other must keep moving bytes at least
  // this often, or the connection is closed.
  milliseconds tcp_half_close_timeout{60'000};
  // Streams one HTTP/2 client connection runs at once (SETTINGS_MAX_CONCURRENT_STREAMS); a
  // request beyond them is refused (REFUSED_STREAM), also while the exchanges of streams
  // the client reset still run, so resets cannot pile up work (CVE-2023-44487).
  uint32_t http2_max_concurrent_streams = 100;
};

// `defaults` with the snapshot's non-zero settings applied.
Limits Resolve(const Limits& defaults, const meshplug::v1::Limits& snapshot);

}  // namespace meshplug::agent::proxy
