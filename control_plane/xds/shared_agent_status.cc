#include "control_plane/xds/shared_agent_status.h"

#include <map>
#include <random>
#include <tuple>

#include "common/log.h"
#include "common/strings.h"

namespace meshplug::control_plane::xds {
namespace {

constexpr std::string_view kPrefix = "agent-status/";

std::string RandomId() {
  std::random_device seed;
  return HexOf(std::to_string(seed()) + std::to_string(seed())).substr(0, 16);
}

// Which of two statuses of one agent to show: connected before disconnected, then the
// latest connection (or disconnection). RFC 3339 times of one format order as strings.
bool Better(const v1::AgentStatus& a, const v1::AgentStatus& b) {
  return std::make_tuple(a.connected(), a.connected() ? a.connected_since() : a.disconnected_at()) >
         std::make_tuple(b.connected(), b.connected() ? b.connected_since() : b.disconnected_at());
}

}  // namespace

SharedAgentStatus::SharedAgentStatus(store::Store& store, AgentRegistry& registry, std::chrono::milliseconds every)
    : store_(store), registry_(registry), every_(every), replica_(RandomId()) {}

SharedAgentStatus::~SharedAgentStatus() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SharedAgentStatus::Start(const std::string& address) {
  address_ = address;
  thread_ = std::thread([this] { Loop(); });
}

void SharedAgentStatus::Loop() {
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, every_, [&] { return stopping_; })) {
    lock.unlock();
    Share();
    lock.lock();
  }
}

void SharedAgentStatus::Share() {
  AgentRegistry::Changes changes = registry_.TakeChanges();
  // After a failure (etcd away), everything is shared again, not only what changed.
  if (resync_) changes.changed = registry_.List();
  resync_ = false;
  for (auto& status : changes.changed) {
    status.set_control_plane(address_);
    if (auto st = store_.PutLive(Cat(kPrefix, replica_, "/", status.agent()), status.SerializeAsString()); !st.ok()) {
      log::Warn("cannot share agents' status", {{"error", std::string(st.message())}});
      resync_ = true;
      return;
    }
  }
  for (const auto& agent : changes.forgotten) store_.DeleteLive(Cat(kPrefix, replica_, "/", agent)).IgnoreError();
}

std::vector<v1::AgentStatus> SharedAgentStatus::List() const {
  std::map<std::string, v1::AgentStatus> best;
  // This replica's own view first: it is current, the shared one up to an interval old.
  for (auto& status : registry_.List()) {
    status.set_control_plane(address_);
    best[status.agent()] = std::move(status);
  }
  auto shared = store_.ListLive(std::string(kPrefix));
  if (!shared.ok()) {
    log::Warn("cannot read the other replicas' agents", {{"error", std::string(shared.status().message())}});
    shared = std::map<std::string, std::string>{};
  }
  const std::string mine = Cat(kPrefix, replica_, "/");
  for (const auto& [name, bytes] : *shared) {
    v1::AgentStatus status;
    if (name.rfind(mine, 0) == 0 || !status.ParseFromString(bytes)) continue;
    auto [slot, fresh] = best.try_emplace(status.agent(), status);
    if (!fresh && Better(status, slot->second)) slot->second = std::move(status);
  }
  std::vector<v1::AgentStatus> out;
  for (auto& [_, status] : best) out.push_back(std::move(status));
  return out;
}

bool SharedAgentStatus::ConnectedAnywhere(const std::string& agent) const {
  if (registry_.IsConnected(agent)) return true;
  for (const auto& status : List()) {
    if (status.agent() == agent) return status.connected();
  }
  return false;
}

}  // namespace meshplug::control_plane::xds
