#include "control_plane/xds/agent_registry.h"

#include "common/strings.h"

namespace meshplug::control_plane::xds {

AgentRegistry::Entry& AgentRegistry::At(const std::string& agent) {
  changed_.insert(agent);
  auto [it, fresh] = agents_.try_emplace(agent);
  if (fresh) it->second.status.set_agent(agent);
  return it->second;
}

v1::TypeStatus& AgentRegistry::TypeAt(Entry& entry, const std::string& type_url) {
  auto [it, fresh] = entry.types.try_emplace(type_url);
  if (fresh) it->second.set_type_url(type_url);
  return it->second;
}

void AgentRegistry::Count(std::string_view metric, const std::string& type_url) {
  if (stats_ != nullptr) stats_->Count(metric, {{"type", std::string_view(type_url).substr(type_url.rfind('.') + 1)}});
}

uint64_t AgentRegistry::Connected(const std::string& agent, const std::string& protocol,
                                  const std::string& peer, const AgentIdentity& identity,
                                  const std::string& admin_address) {
  if (stats_ != nullptr) stats_->Count("meshplug_cp_xds_streams_total", {{"protocol", protocol}});
  std::lock_guard lock(mu_);
  auto& e = At(agent);
  const uint64_t id = next_stream_++;
  e.streams[id] = true;
  e.status.set_connected(true);
  e.status.set_protocol(protocol);
  e.status.set_peer(peer);
  e.status.set_admin_address(admin_address);
  // Milliseconds: replicas order two connections of one agent by it.
  e.status.set_connected_since(NowRfc3339Millis());
  e.status.clear_disconnected_at();
  SetIdentity(e, identity);
  return id;
}

void AgentRegistry::SetIdentity(Entry& e, const AgentIdentity& identity) {
  e.status.set_identity(identity.spiffe_id);
  e.status.set_certificate_expiry(identity.certificate_expiry);
  e.status.set_certificate_issuer(identity.certificate_issuer);
}

void AgentRegistry::CertificateIssued(const std::string& agent, const AgentIdentity& identity) {
  std::lock_guard lock(mu_);
  if (auto it = agents_.find(agent); it != agents_.end()) {
    changed_.insert(agent);
    SetIdentity(it->second, identity);
  }
}

bool AgentRegistry::Disconnected(const std::string& agent, uint64_t stream) {
  std::lock_guard lock(mu_);
  auto& e = At(agent);
  e.streams.erase(stream);
  if (!e.streams.empty()) return false;
  e.status.set_connected(false);
  e.status.set_disconnected_at(NowRfc3339Millis());
  return true;
}

void AgentRegistry::Sent(const std::string& agent, const std::string& type_url, const std::string& version) {
  Count("meshplug_cp_xds_responses_total", type_url);
  std::lock_guard lock(mu_);
  auto& t = TypeAt(At(agent), type_url);
  t.set_sent_version(version);
  t.set_responses(t.responses() + 1);
}

void AgentRegistry::Acked(const std::string& agent, const std::string& type_url, const std::string& version) {
  Count("meshplug_cp_xds_acks_total", type_url);
  std::lock_guard lock(mu_);
  auto& t = TypeAt(At(agent), type_url);
  t.set_acked_version(version);
  t.clear_nack_message();
  t.clear_nack_time();
}

void AgentRegistry::Resumed(const std::string& agent, const std::string& type_url, const std::string& version) {
  std::lock_guard lock(mu_);
  auto& t = TypeAt(At(agent), type_url);
  t.set_sent_version(version);
  t.set_acked_version(version);
}

void AgentRegistry::Nacked(const std::string& agent, const std::string& type_url, std::string_view error) {
  Count("meshplug_cp_xds_nacks_total", type_url);
  const std::string message = Truncated(error, kMaxNackBytes);
  std::lock_guard lock(mu_);
  auto& e = At(agent);
  auto& t = TypeAt(e, type_url);
  const std::string now = NowRfc3339();
  t.set_nack_message(message);
  t.set_nack_time(now);
  e.status.set_last_nack(type_url.substr(type_url.rfind('.') + 1) + ": " + message);
  e.status.set_last_nack_time(now);
}

void AgentRegistry::SetSnapshotVersion(const std::string& agent, const std::string& version) {
  std::lock_guard lock(mu_);
  At(agent).status.set_snapshot_version(version);
}

v1::AgentStatus AgentRegistry::StatusOf(const Entry& e) {
  v1::AgentStatus s = e.status;
  for (const auto& [_, t] : e.types) *s.add_types() = t;
  return s;
}

bool AgentRegistry::ForgetIfDisconnected(const std::string& agent) {
  std::lock_guard lock(mu_);
  auto it = agents_.find(agent);
  if (it == agents_.end()) return false;
  if (it->second.status.connected()) return true;
  agents_.erase(it);
  changed_.insert(agent);
  return false;
}

std::vector<v1::AgentStatus> AgentRegistry::List() const {
  std::lock_guard lock(mu_);
  std::vector<v1::AgentStatus> out;
  for (const auto& [name, e] : agents_) out.push_back(StatusOf(e));
  return out;
}

AgentRegistry::Changes AgentRegistry::TakeChanges() {
  std::lock_guard lock(mu_);
  Changes out;
  for (const auto& agent : changed_) {
    auto it = agents_.find(agent);
    if (it == agents_.end()) {
      out.forgotten.push_back(agent);
    } else {
      out.changed.push_back(StatusOf(it->second));
    }
  }
  changed_.clear();
  return out;
}

bool AgentRegistry::IsConnected(const std::string& agent) const {
  std::lock_guard lock(mu_);
  auto it = agents_.find(agent);
  return it != agents_.end() && it->second.status.connected();
}

std::set<std::string> AgentRegistry::ConnectedAgents() const {
  std::lock_guard lock(mu_);
  std::set<std::string> out;
  for (const auto& [agent, e] : agents_) {
    if (e.status.connected()) out.insert(out.end(), agent);
  }
  return out;
}

size_t AgentRegistry::ConnectedCount() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [agent, e] : agents_) n += e.status.connected() ? 1 : 0;
  return n;
}

int64_t AgentRegistry::Responses(const std::string& agent) const {
  std::lock_guard lock(mu_);
  auto it = agents_.find(agent);
  int64_t n = 0;
  if (it != agents_.end()) {
    for (const auto& [_, t] : it->second.types) n += t.responses();
  }
  return n;
}

}  // namespace meshplug::control_plane::xds
