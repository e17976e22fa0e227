// Picks the endpoints of one cluster: smooth weighted round robin or least request.
// Shared by every worker through the chain set that owns it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <vector>

#include "meshplug/v1/snapshot.pb.h"

namespace meshplug::agent::routing {

namespace v1 = ::meshplug::v1;

// Picks endpoints of one cluster: weighted round robin or least request.
class LoadBalancer {
 public:
  LoadBalancer(v1::LbPolicy policy, std::vector<v1::Endpoint> endpoints);

  // nullopt when the cluster has no endpoint. `avoid` (an index from an earlier pick) is
  // skipped when another endpoint exists, so a retry goes elsewhere.
  std::optional<size_t> Pick(std::optional<size_t> avoid = std::nullopt);
  const v1::Endpoint& endpoint(size_t i) const { return endpoints_[i]; }
  std::optional<size_t> IndexOf(std::string_view address, uint32_t port) const;
  size_t size() const { return endpoints_.size(); }

  // In-flight requests per endpoint, for least request and /clusters.
  void Started(size_t i) { active_[i].fetch_add(1, std::memory_order_relaxed); }
  void Finished(size_t i) { active_[i].fetch_sub(1, std::memory_order_relaxed); }
  int64_t active(size_t i) const { return active_[i].load(std::memory_order_relaxed); }

 private:
  uint32_t weight(size_t i) const;
  size_t PickRoundRobin();
  size_t PickLeastRequest();

  v1::LbPolicy policy_;
  std::vector<v1::Endpoint> endpoints_;
  // Smooth weighted round robin (nginx): every pick adds each endpoint's weight to its
  // current weight and takes the largest, which then gives back the total. Memory and time
  // per pick are O(endpoints) whatever the weights; ties are broken from `start_`, a random
  // offset, so a new snapshot does not send its first requests to the same endpoint.
  std::mutex mu_;
  std::vector<int64_t> current_;  // under mu_
  int64_t total_weight_ = 0;
  size_t start_ = 0;
  // Least request: rotating scan start, random at first.
  std::atomic<uint64_t> next_{0};
  std::unique_ptr<std::atomic<int64_t>[]> active_;
};

}  // namespace meshplug::agent::routing
