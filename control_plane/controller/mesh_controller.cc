#include "control_plane/controller/mesh_controller.h"

#include <google/protobuf/util/message_differencer.h>

#include "common/agent_id.h"
#include "common/log.h"
#include "common/strings.h"
#include "control_plane/translate/selector.h"
#include "control_plane/xds/node_identity.h"

namespace meshplug::control_plane::controller {
namespace {

using resources::Kind;

// Agent ids are "namespace/name" of their Workload; these convert.
std::string AgentOf(const translate::ObjectKey& key) { return AgentId(key.first, key.second); }
translate::ObjectKey WorkloadOf(const std::string& agent) { return SplitAgentId(agent).value_or(translate::ObjectKey{}); }

}  // namespace

MeshController::MeshController(store::Store& store, xds::SnapshotCache& cache,
                               xds::AgentRegistry& registry, Options options)
    : store_(store), cache_(cache), registry_(registry), options_(options) {}

MeshController::~MeshController() { Stop(); }

absl::Status MeshController::Start() {
  auto state = translate::LoadMeshState(store_);
  if (!state.ok()) return state.status();
  {
    std::lock_guard lock(mu_);
    state_ = std::move(*state);
    published_revision_ = state_.revision;
  }
  TranslateAgents(AllAgents());
  subscription_ = store_.Subscribe([this](int64_t) {
    std::lock_guard lock(mu_);
    const auto now = Clock::now();
    if (!first_change_) first_change_ = now;
    last_change_ = now;
    cv_.notify_all();
  });
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void MeshController::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  subscription_.reset();
}

absl::Status MeshController::Register(const mesh::v1::Workload& workload) {
  const std::string& ns = workload.metadata().namespace_();
  auto found = store_.Get(resources::Key{Kind::kNamespace, "", ns});
  if (!found.ok()) return found.status();
  if (!found->has_value()) {
    return absl::FailedPreconditionError(
        Cat("namespace \"", ns, "\" does not exist; create it first (meshctl namespace add ", ns, ")"));
  }
  std::lock_guard lock(mu_);
  const std::string agent = xds::AgentId(workload);
  removal_deadlines_.erase(agent);
  pending_registrations_[agent] = workload;
  if (!first_change_) first_change_ = Clock::now();
  last_change_ = Clock::now();
  cv_.notify_all();
  return absl::OkStatus();
}

void MeshController::Disconnected(const std::string& agent) {
  std::lock_guard lock(mu_);
  removal_deadlines_[agent] = Clock::now() + options_.grace;
  cv_.notify_all();
}

void MeshController::Loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    // The next moment something is due: a debounced publish or a grace period's end.
    std::optional<Clock::time_point> due;
    if (first_change_) due = std::min(*last_change_ + options_.quiet, *first_change_ + options_.max_delay);
    for (const auto& [_, deadline] : removal_deadlines_) due = due ? std::min(*due, deadline) : deadline;
    if (!due) {
      cv_.wait(lock);
      continue;
    }
    if (Clock::now() < *due) {
      cv_.wait_until(lock, *due);
      continue;
    }
    auto pending = std::move(pending_registrations_);
    pending_registrations_.clear();
    std::vector<std::string> expired;
    for (auto it = removal_deadlines_.begin(); it != removal_deadlines_.end();) {
      if (it->second <= Clock::now() && !registry_.IsConnected(it->first)) {
        expired.push_back(it->first);
        it = removal_deadlines_.erase(it);
      } else if (it->second <= Clock::now()) {
        it = removal_deadlines_.erase(it);  // reconnected meanwhile
      } else {
        ++it;
      }
    }
    first_change_.reset();
    last_change_.reset();
    const int64_t since = published_revision_;
    lock.unlock();

    CommitRegistrations(std::move(pending), expired);
    auto events = store_.ChangesSince(since, INT64_MAX / 2);
    if (!events.ok()) {
      // The log no longer reaches back: start over from the whole store.
      log::Warn("reloading the mesh state", {{"reason", std::string(events.status().message())}});
      auto state = translate::LoadMeshState(store_);
      if (state.ok()) {
        {
          std::lock_guard relock(mu_);
          state_ = std::move(*state);
          published_revision_ = state_.revision;
        }
        TranslateAgents(AllAgents());
      }
    } else if (!events->empty()) {
      Publish(std::move(*events));
    }
    lock.lock();
    cv_.notify_all();
  }
}

void MeshController::CommitRegistrations(std::map<std::string, mesh::v1::Workload> pending,
                                         const std::vector<std::string>& expired) {
  std::vector<store::Write> writes;
  for (auto& [agent, wl] : pending) {
    const resources::Key key{Kind::kWorkload, wl.metadata().namespace_(), wl.metadata().name()};
    auto existing = store_.Get(key);
    if (!existing.ok()) continue;
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
  for (const auto& agent : expired) {
    const auto [ns, name] = WorkloadOf(agent);
    const resources::Key key{Kind::kWorkload, ns, name};
    auto existing = store_.Get(key);
    if (!existing.ok() || !existing->has_value()) continue;
    mesh::v1::Workload old;
    old.ParseFromString((*existing)->value);
    if (old.metadata().annotations().count(xds::kRegisteredBy) == 0) continue;  // applied by a user
    writes.push_back(store::Write{key, std::nullopt, (*existing)->resource_version});
    log::Info("agent gone after the grace period", {{"agent", agent}});
  }
  if (writes.empty()) return;
  if (auto rev = store_.Commit(writes); !rev.ok()) {
    log::Warn("registering agents failed", {{"error", std::string(rev.status().message())}});
  }
}

void MeshController::Publish(std::vector<store::Event> events) {
  std::set<std::string> affected;
  bool everyone = false;
  std::set<std::string> plugins;           // plugin names whose mounts may change
  std::set<translate::ObjectKey> chains;  // PluginChains that changed
  std::set<translate::ObjectKey> configs;  // PluginConfigs that changed
  // The plugin a PluginConfig configures, if it is in the state.
  auto configured_plugin = [this](const translate::ObjectKey& key) {
    auto it = state_.plugin_configs.find(key);
    return it == state_.plugin_configs.end() ? std::string() : it->second.object.spec().plugin();
  };
  {
    std::lock_guard lock(mu_);
    for (const auto& ev : events) {
      const auto& k = ev.entry.key;
      switch (k.kind) {
        case Kind::kPlugin:
          plugins.insert(k.name);
          break;
        case Kind::kPluginChain:
          chains.insert({k.ns, k.name});
          break;
        case Kind::kPluginConfig:
          configs.insert({k.ns, k.name});
          break;
        case Kind::kNamespace:
        case Kind::kService:
        case Kind::kWorkload:
        case Kind::kMeshConfig:
          everyone = true;
          break;
      }
    }
    for (const auto& key : configs) plugins.insert(configured_plugin(key));  // the old plugin
    for (const auto& ev : events) {
      if (!state_.Apply(ev)) log::Warn("unreadable change", {{"object", ev.entry.key.ToString()}});
      if (ev.entry.key.kind == Kind::kWorkload && ev.type == store::Event::Type::kDelete) {
        const std::string agent = AgentOf({ev.entry.key.ns, ev.entry.key.name});
        reports_.erase(agent);
        cache_.Remove(agent);
      }
    }
    for (const auto& key : configs) plugins.insert(configured_plugin(key));  // the new plugin
    // As last translated (before the change): agents that mount (or miss) those plugins,
    // or matched those chains.
    for (const auto& [agent, report] : reports_) {
      bool hit = false;
      for (const auto& p : plugins) hit = hit || report.mounted_plugins.count(p);
      for (const auto& [chain, missing] : report.missing_plugins) {
        for (const auto& p : plugins) hit = hit || missing.count(p);
      }
      for (const auto& c : report.matched_chains) hit = hit || chains.count(c);
      if (hit) affected.insert(agent);
    }
    // After the change: agents the changed chains match now.
    for (const auto& key : chains) {
      auto it = state_.plugin_chains.find(key);
      if (it == state_.plugin_chains.end()) continue;
      for (const auto& [wkey, wl] : state_.workloads) {
        if (translate::ChainSelects(state_, it->second, wl)) affected.insert(AgentOf(wkey));
      }
    }
  }
  TranslateAgents(everyone ? AllAgents() : affected);
  std::lock_guard lock(mu_);
  published_revision_ = events.back().revision;
}

std::set<std::string> MeshController::AllAgents() const {
  std::lock_guard lock(mu_);
  std::set<std::string> out;
  for (const auto& [key, _] : state_.workloads) out.insert(AgentOf(key));
  return out;
}

void MeshController::TranslateAgents(const std::set<std::string>& agents) {
  std::shared_ptr<const xds::AgentResources> destinations;
  v1::Snapshot shared;
  {
    std::lock_guard lock(mu_);
    shared = translate::TranslateDestinations(state_);
  }
  destinations = xds::ToResources(shared, interner_);
  for (const auto& agent : agents) {
    translate::Translation t;
    {
      std::lock_guard lock(mu_);
      auto it = state_.workloads.find(WorkloadOf(agent));
      if (it == state_.workloads.end()) continue;
      t = translate::Translate(state_, shared, it->second);
      reports_[agent] = std::move(t.report);
      ++translations_[agent];
    }
    auto resources = xds::ToResources(t.snapshot, interner_, destinations.get());
    registry_.SetSnapshotVersion(agent, resources->version);
    cache_.Set(agent, std::move(resources));
  }
}

void MeshController::FillStatus(resources::Object& obj) const {
  std::lock_guard lock(mu_);
  const std::string type = obj.GetDescriptor()->name();
  const auto& meta = resources::Meta(obj);
  const translate::ObjectKey key{meta.namespace_(), meta.name()};
  if (type == "Plugin") {
    auto& status = *static_cast<mesh::v1::Plugin&>(obj).mutable_status();
    for (const auto& [agent, r] : reports_) {
      if (r.mounted_plugins.count(meta.name())) status.add_agents(agent);
    }
  } else if (type == "PluginChain") {
    auto& pc = static_cast<mesh::v1::PluginChain&>(obj);
    auto& status = *pc.mutable_status();
    for (const auto& [agent, r] : reports_) {
      if (std::find(r.matched_chains.begin(), r.matched_chains.end(), key) != r.matched_chains.end()) {
        status.add_matched_agents(agent);
      }
    }
    std::set<std::string> missing;
    for (const auto& chain : pc.spec().chains()) {
      for (const auto& p : chain.plugins()) {
        if (!state_.plugins.count(p)) missing.insert(p);
      }
    }
    for (const auto& m : missing) status.add_missing_plugins(m);
  } else if (type == "PluginConfig") {
    auto& status = *static_cast<mesh::v1::PluginConfig&>(obj).mutable_status();
    std::set<std::string> conflicts;
    for (const auto& [agent, r] : reports_) {
      if (r.applied_configs.count(key)) status.add_agents(agent);
      if (auto it = r.conflicts.find(key); it != r.conflicts.end()) conflicts.insert(it->second.begin(), it->second.end());
    }
    for (const auto& c : conflicts) status.add_conflicts(c);
  } else if (type == "Workload") {
    auto& status = *static_cast<mesh::v1::Workload&>(obj).mutable_status();
    status.set_connected(registry_.IsConnected(AgentOf(key)));
  }
}

bool MeshController::WaitForRevision(int64_t revision, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return published_revision_ >= revision; });
}

int64_t MeshController::Translations(const std::string& agent) const {
  std::lock_guard lock(mu_);
  auto it = translations_.find(agent);
  return it == translations_.end() ? 0 : it->second;
}

}  // namespace meshplug::control_plane::controller
