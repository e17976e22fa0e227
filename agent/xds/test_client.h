// For tests of the xDS client: an agent stand-in that records what it is given, the curl
// workload's node, fast options and a scratch directory.
#pragma once

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "agent/xds/bootstrap.h"
#include "agent/xds/xds_client.h"

namespace meshplug::agent::xds::testing_client {

inline envoy::config::core::v3::Node CurlNode(const std::string& ns = "curl") {
  Bootstrap b;
  b.node_id = "curl-1";
  b.namespace_ = ns;
  b.labels = {{"app", "curl"}};
  b.service_account = "curl";
  b.address = "127.0.0.2";
  return MakeNode(b, 15003);
}

inline std::string TestDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::filesystem::path dir = std::filesystem::path(base ? base : "/tmp") / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

// Stands in for Agent::Apply: records what it is given, fails on demand.
class FakeAgent {
 public:
  absl::Status Apply(v1::Snapshot s) {
    std::lock_guard lock(mu_);
    for (const auto& m : s.chains().outbound_http()) {
      if (m.has_script() && fail_plugin_ == m.name()) {
        return absl::InvalidArgumentError("chain outbound-http module \"" + m.name() + "\": script does not load");
      }
    }
    applied_.push_back(std::move(s));
    return absl::OkStatus();
  }
  void FailPlugin(const std::string& name) {
    std::lock_guard lock(mu_);
    fail_plugin_ = name;
  }
  size_t count() const {
    std::lock_guard lock(mu_);
    return applied_.size();
  }
  v1::Snapshot last() const {
    std::lock_guard lock(mu_);
    return applied_.empty() ? v1::Snapshot() : applied_.back();
  }
  XdsClient::ApplyFn Fn() {
    return [this](v1::Snapshot s) -> absl::StatusOr<std::vector<std::string>> {
      if (absl::Status st = Apply(std::move(s)); !st.ok()) return st;
      return std::vector<std::string>{};
    };
  }

 private:
  mutable std::mutex mu_;
  std::vector<v1::Snapshot> applied_;
  std::string fail_plugin_;
};

inline XdsClientOptions FastOptions(const std::string& address, XdsProtocol protocol) {
  XdsClientOptions o;
  o.server_address = address;
  o.protocol = protocol;
  o.node = CurlNode();
  o.backoff_base = std::chrono::milliseconds(20);
  o.backoff_max = std::chrono::milliseconds(200);
  o.connect_timeout = std::chrono::milliseconds(2000);
  o.initial_fetch_timeout = std::chrono::milliseconds(5000);
  // One push is one update even on a loaded machine.
  o.timing.settle_max = std::chrono::milliseconds(2000);
  // The control plane sends no Endpoints for a cluster without endpoints (see the report:
  // its ResourceInterner confuses them with the Cluster of the same bytes).
  o.timing.endpoints_warming = std::chrono::milliseconds(200);
  return o;
}

}  // namespace meshplug::agent::xds::testing_client
