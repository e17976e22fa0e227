#include "agent/proxy/limits.h"

#include "agent/routing/mesh_view.h"

namespace meshplug::agent::proxy {

Limits Resolve(const Limits& defaults, const v1::Limits& snapshot) {
  Limits out = defaults;
  if (snapshot.max_header_bytes() != 0) out.max_header_bytes = snapshot.max_header_bytes();
  if (snapshot.max_header_count() != 0) out.max_header_count = snapshot.max_header_count();
  if (snapshot.max_buffered_body_bytes() != 0) {
    out.max_buffered_body_bytes = snapshot.max_buffered_body_bytes();
  }
  if (snapshot.http2_max_concurrent_streams() != 0) {
    out.http2_max_concurrent_streams = snapshot.http2_max_concurrent_streams();
  }
  out.header_read_timeout = routing::DurationOr(
      snapshot.header_read_timeout(), snapshot.has_header_read_timeout(), out.header_read_timeout);
  out.downstream_idle_timeout =
      routing::DurationOr(snapshot.downstream_idle_timeout(),
                          snapshot.has_downstream_idle_timeout(), out.downstream_idle_timeout);
  return out;
}

}  // namespace meshplug::agent::proxy
