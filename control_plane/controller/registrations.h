// Workloads that agents announce on their ADS streams. A registration is written to the
// store in the controller's next cycle, together with the others of that cycle in one
// commit; an agent's registered Workload is removed once the agent has stayed
// disconnected for the grace period. Thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "control_plane/store/store.h"
#include "meshplug/v1/resources.pb.h"

namespace meshplug::control_plane::controller {

class Registrations {
 public:
  using Clock = std::chrono::steady_clock;

  Registrations(store::Store& store, std::chrono::milliseconds grace) : store_(store), grace_(grace) {}

  // Refused when the workload's namespace does not exist.
  absl::Status Register(const mesh::v1::Workload& workload);
  // The agent's last stream ended at `now`.
  void Disconnected(const std::string& agent, Clock::time_point now);
  // The agents connected to some control-plane replica; nullopt when that is not known
  // (the other replicas' status cannot be read): no removal is decided then.
  using ConnectedAgents = std::optional<std::set<std::string>>;

  // Registered Workloads whose agent is connected to no replica and has no grace period
  // running here get one: their agent went away while no control plane was there to see
  // it (its replica died with it, or the control plane was down). One replica does this
  // (the leader), for all.
  void AdoptOrphans(Clock::time_point now, const std::set<std::string>& connected);
  // When the earliest grace period ends.
  std::optional<Clock::time_point> NextDeadline() const;

  // What to write: the pending registrations, and the agents whose grace period has
  // ended while they are still disconnected — seen so twice, kConfirm apart, as another
  // replica's view may be a sharing interval old.
  struct Batch {
    std::map<std::string, mesh::v1::Workload> registered;
    std::vector<std::string> expired;
    // Expired agents whose workload's xDS client is still connected: their Workload stays,
    // without what made it an endpoint, so the client keeps its configuration.
    std::set<std::string> kept_for_clients;
  };
  // `connected` is asked (outside the lock) only when a grace period has ended.
  Batch Take(Clock::time_point now, const std::function<ConnectedAgents()>& connected);
  static constexpr std::chrono::seconds kConfirm{3};
  // Writes the registrations in one commit, then each removal on its own (another replica
  // may have removed it already); unchanged registrations and Workloads that a user
  // applied (not registered by an agent) are left alone.
  void Commit(Batch batch);

 private:
  // Puts `agents` of `batch` back as pending, to be written again shortly.
  void Requeue(const Batch& batch, const std::vector<std::string>& agents, const absl::Status& why);

  store::Store& store_;
  const std::chrono::milliseconds grace_;
  mutable std::mutex mu_;
  std::map<std::string, mesh::v1::Workload> pending_;
  std::map<std::string, Clock::time_point> removal_deadlines_;
  std::set<std::string> confirming_;  // past their deadline once, not connected then
  std::optional<Clock::time_point> retry_at_;  // registrations whose commit failed
};

}  // namespace meshplug::control_plane::controller
