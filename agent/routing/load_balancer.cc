#include "agent/routing/load_balancer.h"

#include <algorithm>

#include "common/random.h"

namespace meshplug::agent::routing {

LoadBalancer::LoadBalancer(v1::LbPolicy policy, std::vector<v1::Endpoint> endpoints)
    : policy_(policy),
      endpoints_(std::move(endpoints)),
      current_(endpoints_.size(), 0),
      next_(RandomU64()),
      active_(new std::atomic<int64_t>[endpoints_.size()]) {
  for (size_t i = 0; i < endpoints_.size(); ++i) {
    active_[i] = 0;
    total_weight_ += weight(i);
  }
  if (!endpoints_.empty()) start_ = RandomU64() % endpoints_.size();
}

uint32_t LoadBalancer::weight(size_t i) const {
  return std::max<uint32_t>(1, endpoints_[i].weight());
}

std::optional<size_t> LoadBalancer::Pick(std::optional<size_t> avoid) {
  if (endpoints_.empty()) return std::nullopt;
  size_t pick = policy_ == v1::LB_POLICY_LEAST_REQUEST ? PickLeastRequest() : PickRoundRobin();
  if (avoid && pick == *avoid && endpoints_.size() > 1) {
    pick = policy_ == v1::LB_POLICY_LEAST_REQUEST ? (pick + 1) % endpoints_.size()
                                                  : PickRoundRobin();
    if (pick == *avoid) pick = (pick + 1) % endpoints_.size();
  }
  return pick;
}

std::optional<size_t> LoadBalancer::IndexOf(std::string_view address, uint32_t port) const {
  for (size_t i = 0; i < endpoints_.size(); ++i) {
    if (endpoints_[i].address() == address && endpoints_[i].port() == port) return i;
  }
  return std::nullopt;
}

size_t LoadBalancer::PickRoundRobin() {
  std::lock_guard lock(mu_);
  size_t best = start_;
  for (size_t k = 0; k < endpoints_.size(); ++k) {
    size_t i = (start_ + k) % endpoints_.size();
    current_[i] += weight(i);
    if (current_[i] > current_[best]) best = i;
  }
  current_[best] -= total_weight_;
  return best;
}

// Power of two choices would need randomness; a scan is cheap for sidecar-sized clusters
// and starts at a rotating offset so ties spread.
size_t LoadBalancer::PickLeastRequest() {
  size_t start = next_.fetch_add(1, std::memory_order_relaxed) % endpoints_.size();
  size_t best = start;
  for (size_t k = 1; k < endpoints_.size(); ++k) {
    size_t i = (start + k) % endpoints_.size();
    if (active(i) < active(best)) best = i;
  }
  return best;
}

}  // namespace meshplug::agent::routing
