// The control-plane replicas an agent may use, from "host:port[,host:port...]". Each
// agent starts at a random one, so agents spread over the replicas, and moves to another
// random one when the one it uses fails (the agents of a dead replica spread over the
// rest, rather than all moving to its neighbour). Thread-safe.
#pragma once

#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/random.h"
#include "common/strings.h"

namespace meshplug::agent::xds {

// The host (an IPv6 one without brackets) and port of one replica's "host:port"; an error
// naming `address` unless the host is given and the port is 1-65535.
inline absl::StatusOr<std::pair<std::string, uint16_t>> ReplicaEndpoint(std::string_view address) {
  const std::optional<HostAndPort> split = SplitHostPort(address);
  const std::optional<uint16_t> port = split ? ParsePort(split->port) : std::nullopt;
  if (!port || split->host.empty()) {
    return absl::InvalidArgumentError(Cat("the control plane address \"", address,
                                          "\" is not host:port (several replicas: host:port,host:port,...)"));
  }
  return std::pair{split->host, *port};
}

// The error of the first entry of "host:port[,host:port...]" that is not host:port (empty
// entries are skipped, as ServerList skips them).
inline absl::Status CheckServerList(std::string_view spec) {
  for (std::string_view s : Split(spec, ',')) {
    if (s.empty()) continue;
    if (auto endpoint = ReplicaEndpoint(s); !endpoint.ok()) return endpoint.status();
  }
  return absl::OkStatus();
}

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
