#include "control_plane/controller/registrations.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>

#include "common/agent_id.h"
#include "common/log.h"
#include "common/strings.h"
#include "control_plane/xds/agent_registry.h"
#include "control_plane/xds/node_identity.h"

namespace meshplug::control_plane::controller {

using resources::Kind;

absl::Status Registrations::Register(const mesh::v1::Workload& workload) {
  const std::string& ns = workload.metadata().namespace_();
  auto found = store_.Get(resources::Key{Kind::kNamespace, "", ns});
  if (!found.ok()) return found.status();
  if (!found->has_value()) {
    return absl::FailedPreconditionError(
        Cat("namespace \"", ns, "\" does not exist; create it first (meshctl namespace add ", ns, ")"));
  }
  const std::string agent = xds::AgentId(workload);
  std::lock_guard lock(mu_);
  removal_deadlines_.erase(agent);
  confirming_.erase(agent);
  pending_[agent] = workload;
  return absl::OkStatus();
}

void Registrations::Disconnected(const std::string& agent, Clock::time_point now) {
  std::lock_guard lock(mu_);
  removal_deadlines_[agent] = now + grace_;
  confirming_.erase(agent);
}

void Registrations::AdoptOrphans(Clock::time_point now, const std::set<std::string>& connected) {
  auto workloads = store_.List(Kind::kWorkload, "");
  if (!workloads.ok()) return;
  std::vector<std::string> orphans;
  for (const auto& e : *workloads) {
    mesh::v1::Workload wl;
    if (!wl.ParseFromString(e.value) || wl.metadata().annotations().count(xds::kRegisteredBy) == 0) continue;
    if (std::string agent = xds::AgentId(wl); !connected.count(agent)) orphans.push_back(std::move(agent));
  }
  std::lock_guard lock(mu_);
  for (const auto& agent : orphans) {
    if (pending_.count(agent) == 0) removal_deadlines_.try_emplace(agent, now + grace_);
  }
}

void Registrations::Requeue(const Batch& batch, const std::vector<std::string>& agents, const absl::Status& why) {
  log::Warn("registering agents failed; trying again", {{"error", std::string(why.message())}});
  // Back to pending (unless the agent registered anew meanwhile): a cycle a second from
  // now writes them.
  std::lock_guard lock(mu_);
  for (const auto& agent : agents) {
    if (auto wl = batch.registered.find(agent); wl != batch.registered.end()) pending_.try_emplace(agent, wl->second);
  }
  retry_at_ = Clock::now() + std::chrono::seconds(1);
}

std::optional<Registrations::Clock::time_point> Registrations::NextDeadline() const {
  std::lock_guard lock(mu_);
  std::optional<Clock::time_point> next = retry_at_;
  for (const auto& [_, deadline] : removal_deadlines_) next = next ? std::min(*next, deadline) : deadline;
  return next;
}

Registrations::Batch Registrations::Take(Clock::time_point now, const std::function<ConnectedAgents()>& ask) {
  bool due = false;
  {
    std::lock_guard lock(mu_);
    for (const auto& [_, deadline] : removal_deadlines_) due = due || deadline <= now;
  }
  const ConnectedAgents connected = due ? ask() : std::nullopt;
  Batch batch;
  std::lock_guard lock(mu_);
  batch.registered = std::move(pending_);
  pending_.clear();
  retry_at_.reset();
  for (auto it = removal_deadlines_.begin(); it != removal_deadlines_.end();) {
    if (it->second > now) {
      ++it;
      continue;
    }
    const std::string& agent = it->first;
    if (connected && connected->count(agent)) {  // it came back
      confirming_.erase(agent);
      it = removal_deadlines_.erase(it);
    } else if (connected && confirming_.erase(agent)) {
      batch.expired.push_back(agent);
      if (connected->count(xds::XdsClientKey(agent))) batch.kept_for_clients.insert(agent);
      it = removal_deadlines_.erase(it);
    } else {
      // Look again a little later: the shared view may lag, or could not be read.
      if (connected) confirming_.insert(agent);
      it->second = now + kConfirm;
      ++it;
    }
  }
  return batch;
}

void Registrations::Commit(Batch batch) {
  std::vector<store::Write> writes;
  for (auto& [agent, wl] : batch.registered) {
    const resources::Key key{Kind::kWorkload, wl.metadata().namespace_(), wl.metadata().name()};
    auto existing = store_.Get(key);
    if (!existing.ok()) {
      // The store is away: all of them wait for the next cycle, none is lost.
      std::vector<std::string> all;
      for (const auto& [a, _] : batch.registered) all.push_back(a);
      Requeue(batch, all, existing.status());
      return;
    }
    if (existing->has_value()) {
      mesh::v1::Workload old;
      old.ParseFromString((*existing)->value);
      wl.mutable_metadata()->set_creation_timestamp(old.metadata().creation_timestamp());
      wl.mutable_metadata()->set_generation(old.metadata().generation());
      if (google::protobuf::util::MessageDifferencer::Equals(wl, old)) continue;
      wl.mutable_metadata()->set_generation(old.metadata().generation() + 1);
    } else {
      wl.mutable_metadata()->set_creation_timestamp(NowRfc3339());
      wl.mutable_metadata()->set_generation(1);
    }
    writes.push_back(store::Write{key, wl.SerializeAsString(), std::nullopt});
  }
  // Registrations need not land together.
  for (const std::vector<store::Write>& some : store::InCommits(writes)) {
    if (auto rev = store_.Commit(some); !rev.ok()) {
      std::vector<std::string> agents;
      for (const auto& w : some) agents.push_back(AgentId(w.key.ns, w.key.name));
      Requeue(batch, agents, rev.status());
    }
  }
  for (const auto& agent : batch.expired) {
    const auto workload = SplitAgentId(agent);
    if (!workload) continue;
    const resources::Key key{Kind::kWorkload, workload->first, workload->second};
    auto existing = store_.Get(key);
    if (!existing.ok() || !existing->has_value()) continue;
    mesh::v1::Workload old;
    old.ParseFromString((*existing)->value);
    if (old.metadata().annotations().count(xds::kRegisteredBy) == 0) continue;  // applied by a user
    std::optional<std::string> kept;
    if (batch.kept_for_clients.count(agent)) {
      old.mutable_metadata()->mutable_annotations()->erase(xds::kRegisteredBy);
      old.mutable_spec()->clear_address();
      old.mutable_spec()->clear_inbound_port();
      old.mutable_spec()->clear_app_ports();
      kept = old.SerializeAsString();
    }
    // Guarded: a registration written since (the agent came back) is not removed.
    if (auto rev = store_.Commit({store::Write{key, kept, (*existing)->resource_version}}); rev.ok()) {
      log::Info(kept ? "agent gone after the grace period; its xDS client keeps the workload"
                     : "agent gone after the grace period",
                {{"agent", agent}});
    }
  }
}

}  // namespace meshplug::control_plane::controller
