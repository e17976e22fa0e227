#include "control_plane/xds/shared_agent_status.h"

#include <map>
#include <tuple>

#include "common/log.h"
#include "common/strings.h"

namespace meshplug::control_plane::xds {
namespace {

constexpr std::string_view kPrefix = "agent-status/";

// Which of two statuses of one agent to show: connected before disconnected, then the
// latest connection (or disconnection). RFC 3339 times of one format order as strings.
bool Better(const v1::AgentStatus& a, const v1::AgentStatus& b) {
  return std::make_tuple(a.connected(), a.connected() ? a.connected_since() : a.disconnected_at()) >
         std::make_tuple(b.connected(), b.connected() ? b.connected_since() : b.disconnected_at());
}

}  // namespace

SharedAgentStatus::SharedAgentStatus(store::Store& store, AgentRegistry& registry, std::string replica)
    : store_(store), registry_(registry), mine_(Cat(kPrefix, replica, "/")) {}

SharedAgentStatus::~SharedAgentStatus() { sharer_.Stop(); }

void SharedAgentStatus::Start(const std::string& address) {
  {
    std::lock_guard lock(mu_);
    address_ = address;
  }
  if (store_.Shared()) sharer_.Start(kEvery, [this] { Share(); });
}

std::string SharedAgentStatus::address() const {
  std::lock_guard lock(mu_);
  return address_;
}

void SharedAgentStatus::Share() {
  AgentRegistry::Changes changes = registry_.TakeChanges();
  // After a failure (etcd away), everything is shared again, not only what changed.
  if (resync_) changes.changed = registry_.List();
  resync_ = false;
  const std::string here = address();
  std::map<std::string, std::string> values;
  for (auto& status : changes.changed) {
    status.set_control_plane(here);
    values.emplace(mine_ + status.agent(), status.SerializeAsString());
  }
  if (auto st = store_.PutLive(values); !st.ok()) {
    log::Warn("cannot share agents' status", {{"error", std::string(st.message())}});
    resync_ = true;
  }
  // Forgotten agents' values go; those whose delete failed are tried again next time.
  undeleted_.insert(changes.forgotten.begin(), changes.forgotten.end());
  for (auto it = undeleted_.begin(); it != undeleted_.end();) {
    it = store_.DeleteLive(mine_ + *it).ok() ? undeleted_.erase(it) : std::next(it);
  }
}

std::vector<v1::AgentStatus> SharedAgentStatus::Local() const {
  std::vector<v1::AgentStatus> out = registry_.List();
  const std::string here = address();
  for (auto& status : out) status.set_control_plane(here);
  return out;
}

absl::StatusOr<std::map<std::string, v1::AgentStatus>> SharedAgentStatus::Merged() const {
  std::map<std::string, v1::AgentStatus> best;
  // This replica's own view first: it is current, the shared one up to an interval old.
  for (auto& status : Local()) best[status.agent()] = std::move(status);
  absl::Status others = ForEachOther([&](v1::AgentStatus status) {
    auto slot = best.find(status.agent());
    if (slot == best.end()) {
      best.emplace(status.agent(), std::move(status));
    } else if (Better(status, slot->second)) {
      slot->second = std::move(status);
    }
  });
  if (!others.ok()) return others;
  return best;
}

absl::Status SharedAgentStatus::ForEachOther(const std::function<void(v1::AgentStatus)>& f) const {
  if (!store_.Shared()) return absl::OkStatus();
  auto shared = store_.ListLive(std::string(kPrefix));
  if (!shared.ok()) return shared.status();
  for (const auto& [name, bytes] : *shared) {
    v1::AgentStatus status;
    if (name.rfind(mine_, 0) != 0 && status.ParseFromString(bytes)) f(std::move(status));
  }
  return absl::OkStatus();
}

std::vector<v1::AgentStatus> SharedAgentStatus::List() const {
  auto merged = Merged();
  if (!merged.ok()) {
    log::Warn("cannot read the other replicas' agents", {{"error", std::string(merged.status().message())}});
    return Local();
  }
  std::vector<v1::AgentStatus> out;
  for (auto& [_, status] : *merged) out.push_back(std::move(status));
  return out;
}

std::optional<std::set<std::string>> SharedAgentStatus::Connected() const {
  // Connected somewhere is what the merge shows first, without copying this replica's
  // statuses (the orphan scan and each registration batch ask, with every agent).
  std::set<std::string> out = registry_.ConnectedAgents();
  absl::Status others = ForEachOther([&](v1::AgentStatus status) {
    if (status.connected()) out.insert(status.agent());
  });
  if (!others.ok()) return std::nullopt;
  return out;
}

}  // namespace meshplug::control_plane::xds
