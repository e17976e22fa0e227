#include "control_plane/controller/publisher.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <string_view>
#include <utility>

#include "common/agent_id.h"
#include "common/log.h"
#include "common/xds_types.h"

namespace meshplug::control_plane::controller {

namespace {

// A hold this long is worth a line in the log: agents saw old endpoints meanwhile.
constexpr auto kLongHold = std::chrono::milliseconds(200);

int64_t Ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

std::string ScopeKey(const std::vector<resources::EgressHost>& scope) {
  std::string key;
  for (const auto& h : scope) key += h.ns + "/" + h.name + ",";
  return key;
}

// The Services of `snap` by name.
std::map<std::string_view, const v1::Service*> ServicesByName(const v1::Snapshot& snap) {
  std::map<std::string_view, const v1::Service*> out;
  for (const auto& s : snap.services()) out.emplace(s.name(), &s);
  return out;
}

}  // namespace

void Publisher::Publish(const translate::MeshState& state, std::set<std::string> agents, bool may_hold,
                        const std::set<std::string>& rescripted) {
  const bool new_destinations = state.destinations_generation != generation_;
  if (new_destinations) {
    generation_ = state.destinations_generation;
    v1::Snapshot before = std::exchange(all_, translate::TranslateDestinations(state));
    by_namespace_.clear();
    previous_scopes_ = std::move(by_scope_);
    by_scope_.clear();
    AddCopyHolders(before, agents);
  }
  {
    std::lock_guard lock(mu_);
    plugins_.clear();
    for (const auto& [name, _] : state.plugins) plugins_.insert(name);
  }
  for (const auto& agent : agents) {
    const auto workload = SplitAgentId(agent);
    if (!workload) continue;
    auto it = state.workloads.find(*workload);
    if (it == state.workloads.end()) continue;
    const Destinations& destinations = DestinationsFor(state, workload->first);
    translate::Translation t = translate::Translate(state, destinations.snapshot, it->second);
    {
      std::lock_guard lock(mu_);
      translate::Report& slot = reports_[agent];
      index_.Update(agent, &slot, &t.report);
      slot = std::move(t.report);
      ++translations_[agent];
    }
    SetResources(agent, xds::ToResources(t.snapshot, interner_, destinations.resources, cache_.Get(agent).get()));
  }
  if (new_destinations && !rebase_pending_) {
    rebase_pending_ = true;
    held_since_ = now_();
  }
  Rescripts rescripts = Rescripting(state, rescripted, agents);
  if (rebase_pending_ && (!may_hold || now_() >= next_rebase_)) {
    const auto start = now_();
    const size_t pushed = Rebase(state, agents, rescripts);
    const auto end = now_();
    rebase_pending_ = false;
    next_rebase_ = end + (end - start);
    if (start - held_since_ >= kLongHold) {
      log::Info("endpoints held back during a burst of changes went out",
                {{"agents", std::to_string(pushed)}, {"held_ms", std::to_string(Ms(start - held_since_))},
                 {"took_ms", std::to_string(Ms(end - start))}});
    }
  }
  // The rescripted agents Rebase did not take: all of them when it did not run.
  for (const auto& agent : rescripts.agents) Rescript(agent, rescripts.scripts);
  previous_scopes_.clear();
}

void Publisher::AddCopyHolders(const v1::Snapshot& before, std::set<std::string>& agents) const {
  // The index changes only on this thread: read without mu_, which status calls take.
  const auto& copies = index_.Copies();
  if (copies.empty()) return;
  const auto old = ServicesByName(before);
  const auto now = ServicesByName(all_);
  for (const auto& [service, holders] : copies) {
    auto a = old.find(service);
    auto b = now.find(service);
    const bool same = a != old.end() && b != now.end() &&
                      google::protobuf::util::MessageDifferencer::Equals(*a->second, *b->second);
    if (!same) agents.insert(holders.begin(), holders.end());
  }
}

Publisher::Rescripts Publisher::Rescripting(const translate::MeshState& state, const std::set<std::string>& rescripted,
                                            const std::set<std::string>& translated) {
  // Each new script encoded once. The index changes only on this thread: read without mu_.
  Rescripts out;
  for (const auto& plugin : rescripted) {
    auto it = state.plugins.find(plugin);
    const auto& mounting = index_.PluginAgents(plugin);
    if (it == state.plugins.end() || mounting.empty()) continue;
    out.scripts.push_back(interner_.Intern(plugin, translate::ScriptOf(it->second.object)));
    std::set_difference(mounting.begin(), mounting.end(), translated.begin(), translated.end(),
                        std::inserter(out.agents, out.agents.end()));
  }
  return out;
}

void Publisher::Rescript(const std::string& agent, const std::vector<xds::ResourcePtr>& scripts) {
  // Replace leaves out the scripts the agent does not hold.
  if (const xds::Resources current = cache_.Get(agent)) {
    SetResources(agent, xds::Replace(*current, xds_types::UrlOf<v1::PluginScript>(), scripts));
  }
}

std::optional<Publisher::Clock::time_point> Publisher::RebaseDue() const {
  if (!rebase_pending_) return std::nullopt;
  return next_rebase_;
}

size_t Publisher::Rebase(const translate::MeshState& state, const std::set<std::string>& translated,
                         Rescripts& rescripts) {
  std::vector<std::string> others;
  size_t pushed = 0;
  {
    std::lock_guard lock(mu_);
    for (const auto& [agent, _] : reports_) {
      if (!translated.count(agent)) others.push_back(agent);
    }
  }
  for (const auto& agent : others) {
    const auto workload = SplitAgentId(agent);
    const xds::Resources current = cache_.Get(agent);
    if (!workload || !current) continue;
    const Destinations& destinations = DestinationsFor(state, workload->first);
    // The same for it: a new script, if any, goes with Publish's other rescripted agents.
    if (current->base && current->base->version == destinations.resources->version) continue;
    const bool new_script = rescripts.agents.erase(agent) > 0;
    pushed += SetResources(agent, new_script ? xds::Replace(*current, xds_types::UrlOf<v1::PluginScript>(),
                                                            rescripts.scripts, destinations.resources)
                                             : xds::Rebase(*current, destinations.resources));
  }
  return pushed;
}

bool Publisher::SetResources(const std::string& agent, xds::Resources resources) {
  registry_.SetSnapshotVersion(agent, resources->version);
  return cache_.Set(agent, std::move(resources));
}

const Publisher::Destinations& Publisher::DestinationsFor(const translate::MeshState& state, const std::string& ns) {
  auto [at, fresh] = by_namespace_.try_emplace(ns, nullptr);
  if (!fresh) return *at->second;
  const auto scope = translate::EgressScope(state, ns);
  // An empty scope (no Service) is "" and no scope is listed as entries: two keys apart.
  auto [slot, made] = by_scope_.try_emplace(scope ? ScopeKey(*scope) : "every Service");
  if (made) {
    slot->second.snapshot = scope ? translate::ScopeDestinations(all_, *scope) : all_;
    slot->second.resources = xds::ToResources(slot->second.snapshot, interner_);
    // Unchanged for this scope (a workload joined a Service it may not call): the same
    // object, one for all of the scope's agents however they were last published.
    auto before = previous_scopes_.find(slot->first);
    if (before != previous_scopes_.end() && before->second.resources->version == slot->second.resources->version) {
      slot->second = std::move(before->second);
    }
  }
  at->second = &slot->second;
  return slot->second;
}

void Publisher::Remove(const std::string& agent) {
  {
    std::lock_guard lock(mu_);
    if (auto it = reports_.find(agent); it != reports_.end()) {
      index_.Update(agent, &it->second, nullptr);
      reports_.erase(it);
    }
  }
  cache_.Remove(agent);
}

void Publisher::ReadIndex(
    const std::function<void(const ReportIndex&, const std::set<std::string>& plugins)>& read) const {
  std::lock_guard lock(mu_);
  read(index_, plugins_);
}

int64_t Publisher::Translations(const std::string& agent) const {
  std::lock_guard lock(mu_);
  auto it = translations_.find(agent);
  return it == translations_.end() ? 0 : it->second;
}

}  // namespace meshplug::control_plane::controller
