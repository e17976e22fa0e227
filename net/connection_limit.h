// How many connections one listener may hold at once. Beyond the limit a new connection
// is closed as soon as it is accepted, and counted, instead of piling up until the
// process runs out of descriptors and every listener (the admin one too) stops.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/stats.h"

namespace meshplug::net {

class ConnectionLimit : public std::enable_shared_from_this<ConnectionLimit> {
 public:
  // `stats` (may be null) counts refused connections as
  // meshplug_agent_connections_rejected_total{listener}.
  ConnectionLimit(std::string listener, size_t max, Stats* stats = nullptr)
      : listener_(std::move(listener)), max_(max), stats_(stats) {}

  // A slot held for as long as the returned handle lives (it keeps this limit alive), or
  // nullptr when the listener is full (the caller closes the connection).
  std::shared_ptr<void> TryAcquire();

  const std::string& listener() const { return listener_; }
  size_t max() const { return max_; }
  size_t active() const { return active_.load(std::memory_order_relaxed); }
  uint64_t rejected() const { return rejected_.load(std::memory_order_relaxed); }

  // A default for proxy listeners from the process's descriptor limit: each proxied
  // connection may need a second descriptor upstream, and some are kept for the admin
  // endpoint, the xDS stream, pools and files.
  static size_t DefaultForProxyListener();

 private:
  const std::string listener_;
  const size_t max_;
  Stats* const stats_;
  std::atomic<size_t> active_{0};
  std::atomic<uint64_t> rejected_{0};
};

}  // namespace meshplug::net
