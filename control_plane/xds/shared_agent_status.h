// Every agent's status as all control-plane replicas know it. Each replica writes the
// status of the agents it serves as live values in the store (what changed, once per
// interval) and reads the others', so `meshctl proxy status` against any replica lists
// every agent, and an agent whose replica died disappears within the live values' TTL.
// With SQLite (one control plane) the live values stay in this process.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "control_plane/store/store.h"
#include "control_plane/xds/agent_registry.h"
#include "meshplug/v1/admin.pb.h"

namespace meshplug::control_plane::xds {

class SharedAgentStatus {
 public:
  SharedAgentStatus(store::Store& store, AgentRegistry& registry,
                    std::chrono::milliseconds every = std::chrono::seconds(1));
  ~SharedAgentStatus();

  // Starts sharing; `address` is this replica's, shown beside the agents it serves.
  void Start(const std::string& address);

  // Per agent, the status from the replica it is connected to (the latest connection when
  // two claim it, as a dead replica's claim lasts until its TTL); else its latest.
  std::vector<v1::AgentStatus> List() const;
  // Whether the agent is connected to any replica.
  bool ConnectedAnywhere(const std::string& agent) const;

 private:
  void Loop();
  void Share();

  store::Store& store_;
  AgentRegistry& registry_;
  const std::chrono::milliseconds every_;
  const std::string replica_;  // this process's key part (random)
  std::string address_;
  bool resync_ = false;  // the sharing thread's

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace meshplug::control_plane::xds
