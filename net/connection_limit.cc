#include "net/connection_limit.h"

#include <sys/resource.h>

#include <algorithm>

#include "common/log.h"

namespace meshplug::net {

std::shared_ptr<void> ConnectionLimit::TryAcquire() {
  if (active_.fetch_add(1, std::memory_order_relaxed) >= max_) {
    active_.fetch_sub(1, std::memory_order_relaxed);
    rejected_.fetch_add(1, std::memory_order_relaxed);
    if (stats_ != nullptr) stats_->Count("meshplug_agent_connections_rejected_total", {{"listener", listener_}});
    log::Write(log::Level::kWarn, "listener full; new connections are closed",
               {{"listener", listener_}, {"limit", std::to_string(max_)}}, "listener full " + listener_);
    return nullptr;
  }
  // Points at this limit (non-null, so the caller can tell it from "full").
  return std::shared_ptr<void>(this, [self = shared_from_this()](void*) {
    self->active_.fetch_sub(1, std::memory_order_relaxed);
  });
}

size_t ConnectionLimit::DefaultForProxyListener() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return 100'000;
  const size_t descriptors = static_cast<size_t>(limit.rlim_cur);
  // Two proxy listeners at two descriptors per connection, and 64 kept aside.
  return std::max<size_t>(16, descriptors > 64 ? (descriptors - 64) / 4 : 0);
}

}  // namespace meshplug::net
