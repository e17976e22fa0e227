// The control-plane replicas an agent may use, from "host:port[,host:port...]". Each
// agent starts at a random one, so agents spread over the replicas, and moves to another
// random one when the one it uses fails (the agents of a dead replica spread over the
// rest, rather than all moving to its neighbour). Thread-safe.
#pragma once

#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/random.h"
#include "common/strings.h"

namespace meshplug::agent::xds {

class ServerList {
 public:
  explicit ServerList(std::string_view spec) {
    for (std::string_view s : Split(spec, ',')) {
      if (!s.empty()) servers_.emplace_back(s);
    }
    if (servers_.empty()) servers_.emplace_back();
    at_ = RandomU64() % servers_.size();
  }

  std::string current() const {
    std::lock_guard lock(mu_);
    return servers_[at_];
  }
  // Moves on from `failed` (unless another caller already did).
  void Failed(const std::string& failed) {
    std::lock_guard lock(mu_);
    if (servers_[at_] != failed || servers_.size() < 2) return;
    at_ = (at_ + 1 + RandomU64() % (servers_.size() - 1)) % servers_.size();
  }
  // Every replica, the current one first.
  std::vector<std::string> InTurn() const {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (size_t i = 0; i < servers_.size(); ++i) out.push_back(servers_[(at_ + i) % servers_.size()]);
    return out;
  }

 private:
  std::vector<std::string> servers_;
  mutable std::mutex mu_;
  size_t at_ = 0;
};

}  // namespace meshplug::agent::xds
