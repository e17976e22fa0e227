// The control-plane replicas an agent may use, from "host:port[,host:port...]". Each
// agent starts at a random one, so agents spread over the replicas, and moves to the next
// when the one it uses fails. Thread-safe.
#pragma once

#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "common/strings.h"

namespace meshplug::agent::xds {

class ServerList {
 public:
  explicit ServerList(std::string_view spec) {
    for (std::string_view s : Split(spec, ',')) {
      if (!s.empty()) servers_.emplace_back(s);
    }
    if (servers_.empty()) servers_.emplace_back();
    std::random_device seed;
    at_ = std::uniform_int_distribution<size_t>(0, servers_.size() - 1)(seed);
  }

  std::string current() const {
    std::lock_guard lock(mu_);
    return servers_[at_];
  }
  // Moves on from `failed` (unless another caller already did).
  void Failed(const std::string& failed) {
    std::lock_guard lock(mu_);
    if (servers_[at_] == failed) at_ = (at_ + 1) % servers_.size();
  }
  size_t size() const { return servers_.size(); }

 private:
  std::vector<std::string> servers_;
  mutable std::mutex mu_;
  size_t at_ = 0;
};

}  // namespace meshplug::agent::xds
