#include "control_plane/controller/mesh_controller.h"

#include <google/protobuf/util/message_differencer.h>

#include "common/agent_id.h"
#include "common/log.h"
#include "control_plane/controller/change_impact.h"
#include "control_plane/xds/node_identity.h"

namespace meshplug::control_plane::controller {

MeshController::MeshController(store::Store& store, xds::SnapshotCache& cache, xds::AgentRegistry& registry,
                               Options options)
    : store_(store),
      registry_(registry),
      publisher_(cache, registry),
      status_(publisher_, registry),
      registrations_(store, options.grace),
      connected_(options.connected ? options.connected
                                   : std::function<Registrations::ConnectedAgents()>([&registry] {
                                       return Registrations::ConnectedAgents(registry.ConnectedAgents());
                                     })),
      orphan_scan_(options.orphan_scan),
      replica_(options.replica),
      debouncer_(options.quiet, options.max_delay) {}

MeshController::~MeshController() { Stop(); }

absl::Status MeshController::Start() {
  auto state = translate::LoadMeshState(store_);
  if (!state.ok()) return state.status();
  state_ = std::move(*state);
  {
    std::lock_guard lock(mu_);
    published_revision_ = state_.revision;
    if (pending_trust_) state_.trust = *std::move(pending_trust_);
    pending_trust_.reset();
    trust_published_ = trust_set_;
  }
  publisher_.Publish(state_, AllAgents());
  subscription_ = store_.Subscribe([this](int64_t) {
    std::lock_guard lock(mu_);
    debouncer_.Changed(Clock::now());
    cv_.notify_all();
  });
  // Off the loop: the scan's store calls must not hold up publishing.
  orphan_scanner_.Start(orphan_scan_, [this] {
    if (!LeadsCleanUp()) return;
    const auto connected = connected_();
    if (!connected) return;
    registrations_.AdoptOrphans(Clock::now(), *connected);
    std::lock_guard lock(mu_);
    cv_.notify_all();  // new grace periods: the loop's next deadline may be sooner
  });
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void MeshController::Stop() {
  orphan_scanner_.Stop();
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  subscription_.reset();
}

absl::Status MeshController::Register(const mesh::v1::Workload& workload) {
  if (absl::Status st = registrations_.Register(workload); !st.ok()) return st;
  std::lock_guard lock(mu_);
  debouncer_.Changed(Clock::now(), /*may_lead=*/false);
  cv_.notify_all();
  return absl::OkStatus();
}

void MeshController::SetTrust(v1::TrustBundle trust, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  pending_trust_ = std::move(trust);
  const int64_t mine = ++trust_set_;
  debouncer_.Changed(Clock::now());
  cv_.notify_all();
  if (thread_.joinable()) cv_.wait_for(lock, timeout, [&] { return stopping_ || trust_published_ >= mine; });
}

void MeshController::Disconnected(const std::string& agent) {
  registrations_.Disconnected(agent, Clock::now());
  std::lock_guard lock(mu_);
  cv_.notify_all();
}

void MeshController::Loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    // The next moment something is due: a debounced publish, endpoints held back, or a
    // grace period's end. Held-back endpoints go out with the next publish when changes
    // are pending; else once they are due, or `quiet` after the last cycle (the burst is
    // over).
    std::optional<Clock::time_point> due = debouncer_.Due();
    if (auto held = publisher_.RebaseDue(); held && !due) due = std::min(*held, last_cycle_ + debouncer_.quiet());
    if (auto deadline = registrations_.NextDeadline()) due = due ? std::min(*due, *deadline) : *deadline;
    if (!due) {
      cv_.wait(lock);
      continue;
    }
    if (Clock::now() < *due) {
      cv_.wait_until(lock, *due);
      continue;
    }
    const bool bursting = debouncer_.Bursting();
    debouncer_.Reset();
    const int64_t since = state_.revision;  // not published_revision_: held back, it lags
    std::optional<v1::TrustBundle> trust = std::move(pending_trust_);
    pending_trust_.reset();
    const int64_t trust_set = trust_set_;
    lock.unlock();

    registrations_.Commit(
        registrations_.Take(Clock::now(), connected_));
    // New trust concerns every agent: it goes out in the same publish as the changes.
    const bool trust_changed = trust && !google::protobuf::util::MessageDifferencer::Equals(*trust, state_.trust);
    if (trust_changed) state_.trust = *std::move(trust);
    auto events = store_.ChangesSince(since, INT64_MAX / 2);
    if (!events.ok()) {
      log::Warn("reloading the mesh state", {{"reason", std::string(events.status().message())}});
      Reload();
    } else if (!events->empty()) {
      Follow(*events, trust_changed, bursting);
    } else if (trust_changed) {
      publisher_.Publish(state_, AllAgents());
    } else if (publisher_.RebaseDue()) {
      publisher_.Publish(state_, {});  // no change came: the endpoints held back go out
    }
    last_cycle_ = Clock::now();
    lock.lock();
    trust_published_ = trust_set;
    // Not while some agents still wait for the destinations of these changes.
    if (!publisher_.RebaseDue()) published_revision_ = std::max(published_revision_, state_.revision);
    cv_.notify_all();
  }
}

bool MeshController::LeadsCleanUp() {
  constexpr const char* kRole = "leader/agent-clean-up";
  auto made = store_.CreateLive(kRole, replica_);
  if (made.ok() && *made) {
    log::Info("this control plane cleans up after agents that vanished", {{"replica", replica_}});
    return true;
  }
  auto leader = store_.ListLive(kRole);
  if (!leader.ok()) return false;
  auto holder = leader->find(kRole);
  return holder != leader->end() && holder->second == replica_;
}

void MeshController::Follow(const std::vector<store::Event>& events, bool everyone, bool bursting) {
  const ChangeImpact impact(state_, events);
  for (const auto& ev : events) {
    if (!state_.Apply(ev)) log::Warn("unreadable change", {{"object", ev.entry.key.ToString()}});
    if (ev.entry.key.kind == resources::Kind::kWorkload && ev.type == store::Event::Type::kDelete) {
      mesh::v1::Workload old;
      WorkloadGone(AgentId(ev.entry.key.ns, ev.entry.key.name), old.ParseFromString(ev.entry.value) ? &old : nullptr);
    }
  }
  if (everyone || impact.everyone()) {
    publisher_.Publish(state_, AllAgents(), /*may_hold=*/bursting);  // their scripts come with them
    return;
  }
  std::set<std::string> agents;
  publisher_.ReadIndex(
      [&](const ReportIndex& index, const std::set<std::string>&) { agents = impact.Agents(state_, index); });
  publisher_.Publish(state_, std::move(agents), /*may_hold=*/bursting, impact.Rescripted());
}

void MeshController::WorkloadGone(const std::string& agent, const mesh::v1::Workload* old) {
  publisher_.Remove(agent);
  // Its status goes too (from every replica's proxy status), unless it is still here.
  const bool connected = registry_.ForgetIfDisconnected(agent);
  // An agent still streaming here keeps its registration: it is the agent's to make.
  // (Another replica removed it while it could not see this one's agents, cut off from
  // etcd longer than the grace period; or someone deleted it by hand.)
  if (connected && old && old->metadata().annotations().count(resources::kRegisteredBy) != 0) {
    log::Info("registering again an agent that is still connected", {{"agent", agent}});
    if (auto st = Register(*old); !st.ok()) log::Warn("cannot register it again", {{"error", std::string(st.message())}});
  }
}

void MeshController::Reload() {
  auto state = translate::LoadMeshState(store_);
  if (!state.ok()) {
    // The state stays as it was; what is published (new trust, say) still goes out.
    log::Warn("cannot reload the mesh state", {{"error", std::string(state.status().message())}});
  } else {
    state->trust = std::move(state_.trust);
    for (const auto& [key, workload] : state_.workloads) {
      if (!state->workloads.count(key)) WorkloadGone(AgentId(key.first, key.second), &workload);
    }
    state_ = std::move(*state);
  }
  publisher_.Publish(state_, AllAgents());
}

std::set<std::string> MeshController::AllAgents() const {
  std::set<std::string> out;
  for (const auto& [key, _] : state_.workloads) out.insert(AgentId(key.first, key.second));
  return out;
}

bool MeshController::WaitForRevision(int64_t revision, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return published_revision_ >= revision; });
}

}  // namespace meshplug::control_plane::controller
