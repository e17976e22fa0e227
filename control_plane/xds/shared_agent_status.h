// Every agent's status as all control-plane replicas know it. Each replica writes the
// status of the agents it serves as live values in the store (what changed, once per
// interval) and reads the others', so `meshctl proxy status` against any replica lists
// every agent, and an agent whose replica died disappears within the live values' TTL.
// A store that no other control plane uses (SQLite) shares nothing: the local view is all.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/periodic.h"
#include "control_plane/store/store.h"
#include "control_plane/xds/agent_registry.h"
#include "meshplug/v1/admin.pb.h"

namespace meshplug::control_plane::xds {

class SharedAgentStatus {
 public:
  // How often what changed is shared; a replica's view of the others is this old at most.
  static constexpr std::chrono::seconds kEvery{1};

  // `replica`: this control plane's id in the store's live values.
  SharedAgentStatus(store::Store& store, AgentRegistry& registry, std::string replica);
  ~SharedAgentStatus();

  // Starts sharing (a shared store only); `address` is this replica's, shown beside the
  // agents it serves.
  void Start(const std::string& address);

  // Per agent, the status from the replica it is connected to (the latest connection when
  // two claim it, as a dead replica's claim lasts until its TTL); else its latest.
  std::vector<v1::AgentStatus> List() const;
  // The agents connected to some replica; nullopt when the others' cannot be read (then
  // nothing may be concluded about an agent this replica does not serve).
  std::optional<std::set<std::string>> Connected() const;

 private:
  void Share();
  std::string address() const;
  std::vector<v1::AgentStatus> Local() const;  // this replica's agents, with its address
  // Per agent, the status to show (this replica's and the others'); an error when the
  // others' cannot be read.
  absl::StatusOr<std::map<std::string, v1::AgentStatus>> Merged() const;
  // Calls `f` with each status the other replicas share; an error when they cannot be read.
  absl::Status ForEachOther(const std::function<void(v1::AgentStatus)>& f) const;

  store::Store& store_;
  AgentRegistry& registry_;
  const std::string mine_;  // the prefix of this replica's live values

  mutable std::mutex mu_;
  std::string address_;  // under mu_
  bool resync_ = false;              // the sharing thread's
  std::set<std::string> undeleted_;  // the sharing thread's: forgotten, delete failed
  Periodic sharer_;                  // last: stopped before the rest goes
};

}  // namespace meshplug::control_plane::xds
