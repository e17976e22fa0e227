#include "control_plane/xds/stream_protocol.h"

#include <utility>

#include "common/log.h"
#include "common/xds_types.h"
#include "control_plane/xds/envoy_resources.h"
#include "control_plane/xds/response_bytes.h"

namespace meshplug::control_plane::xds {
namespace {

// meshplug's types, then Envoy's, each in push order.
const std::vector<std::string>& ServedTypeUrls() {
  static const std::vector<std::string> urls = [] {
    std::vector<std::string> all = xds_types::TypeUrls();
    all.insert(all.end(), EnvoyTypeUrls().begin(), EnvoyTypeUrls().end());
    return all;
  }();
  return urls;
}

// The first type, in push order, flagged to be sent; clears its flag. Both protocols keep
// per-type state with a `send` flag.
template <typename TypeState>
std::pair<const std::string*, TypeState*> TakeNextToSend(std::map<std::string, TypeState>& types) {
  for (const auto& type : ServedTypeUrls()) {
    auto it = types.find(type);
    if (it == types.end() || !it->second.send) continue;
    it->second.send = false;
    return {&type, &it->second};
  }
  return {nullptr, nullptr};
}

// Responses an ACK or NACK may still answer, per type.
constexpr size_t kRecentNonces = 16;

}  // namespace

bool ProtocolBase::Served(const std::string& type) const {
  if (IsEnvoyType(type)) return true;
  if (xds_types::FindType(type)) {
    if (!envoy_types_only_) return true;
    log::Write(log::Level::kWarn, "meshplug's types are served over mTLS only; request ignored",
               {{"agent", agent_}, {"type", type}}, "envoy only " + agent_);
    return false;
  }
  log::Debug("request for an unknown type ignored", {{"agent", agent_}, {"type", type}});
  return false;
}

bool ProtocolBase::Subscribe(std::set<std::string>& names, const std::string& name, const std::string& type) {
  if (names.size() >= kMaxSubscribedNames && !names.count(name)) {
    log::Write(log::Level::kWarn, "subscription limit reached; name ignored",
               {{"agent", agent_}, {"type", type}, {"limit", std::to_string(kMaxSubscribedNames)}},
               "subscription limit " + agent_);
    return false;
  }
  return names.insert(name).second;
}

void SotwProtocol::Handle(const Request& req) {
  const std::string& type = req.type_url();
  if (!Served(type)) return;
  TypeState& t = types_[type];
  // A request answering an older response than the last one is stale: ignore it.
  if (!req.response_nonce().empty() && req.response_nonce() != t.nonce) return;
  if (!req.response_nonce().empty()) {
    if (req.has_error_detail()) {
      registry_.Nacked(agent_, type, req.error_detail().message());
      log::Warn("agent rejected a response", {{"agent", agent_}, {"type", type},
                                               {"version", t.sent_version},
                                               {"error", req.error_detail().message()}});
    } else {
      registry_.Acked(agent_, type, req.version_info());
    }
  }
  const bool first = !t.subscribed;
  t.subscribed = true;
  std::set<std::string> names;
  for (const std::string& name : req.resource_names()) Subscribe(names, name, type);
  const bool wildcard = names.count("*") || (names.empty() && !t.explicit_names_seen);
  t.explicit_names_seen = t.explicit_names_seen || !names.empty();
  const bool changed = !first && (wildcard != t.wildcard || (!wildcard && names != t.names));
  t.wildcard = wildcard;
  t.names = wildcard ? std::set<std::string>{} : std::move(names);
  // A reconnecting agent that already runs our version of a wildcard type needs nothing.
  const bool up_to_date = resources_ && t.wildcard && req.version_info() == resources_->TypeVersion(type);
  if ((first && !up_to_date) || changed) t.send = true;
  if (first && up_to_date) t.sent_version = req.version_info();
}

void SotwProtocol::SetResources(Resources resources) {
  resources_ = std::move(resources);
  for (auto& [type, t] : types_) {
    if (t.subscribed && resources_->TypeVersion(type) != t.sent_version) t.send = true;
  }
}

bool SotwProtocol::NextResponse(grpc::ByteBuffer* out) {
  if (!resources_) return false;
  auto [next, state] = TakeNextToSend(types_);
  if (!next) return false;
  const std::string& type = *next;
  TypeState& t = *state;
  Response head;
  head.set_type_url(type);
  head.set_version_info(resources_->TypeVersion(type));
  ResponseBytes bytes;
  // A wildcard subscriber gets the shared resources as one slice framed for all agents;
  // the order of a response's resources means nothing.
  std::optional<AgentResources::Parts> parts = t.wildcard ? resources_->SharedAndOwn(type) : std::nullopt;
  if (parts) {
    if (parts->shared) bytes.AddLayer(*parts->shared, type);
    for (const auto& [_, r] : *parts->own) bytes.AddAny(*r);
  } else {
    resources_->ForEach(type, [&](const std::string& name, const ResourcePtr& r) {
      if (t.wildcard || t.names.count(name)) bytes.AddAny(*r);
    });
  }
  t.nonce = NextNonce();
  t.sent_version = head.version_info();
  head.set_nonce(t.nonce);
  head.mutable_control_plane()->set_identifier("meshplug");
  registry_.Sent(agent_, type, t.sent_version);
  std::move(bytes).Finish(head, out);
  return true;
}

void DeltaProtocol::Handle(const Request& req) {
  const std::string& type = req.type_url();
  if (!Served(type)) return;
  const bool first = !types_.count(type);
  TypeState& t = types_[type];
  if (first) {
    for (const auto& [name, version] : req.initial_resource_versions()) {
      if (t.client_versions.size() >= kMaxSubscribedNames) break;
      t.client_versions.emplace(name, version);
    }
    t.resumed = !t.client_versions.empty();
    if (req.resource_names_subscribe().empty()) t.wildcard = true;  // legacy wildcard
  }
  // A pass over the type is due when the subscriptions change (SetResources flags it when
  // the resources move); after a plain ACK or NACK it would find nothing to send.
  const bool subscriptions_change =
      first || !req.resource_names_subscribe().empty() || !req.resource_names_unsubscribe().empty();
  // Subscription changes count even with a stale nonce.
  for (const auto& n : req.resource_names_subscribe()) {
    if (n == "*") {
      t.wildcard = true;
    } else if (Subscribe(t.names, n, type) && !first) {
      t.client_versions.erase(n);  // newly subscribed: send it even if unchanged
      t.told_missing.erase(n);
    }
  }
  for (const auto& n : req.resource_names_unsubscribe()) {
    if (n == "*") {
      t.wildcard = false;
    } else {
      t.names.erase(n);
      t.told_missing.erase(n);
      if (!t.wildcard) t.client_versions.erase(n);
    }
  }
  if (!req.response_nonce().empty()) {
    std::string version;
    for (const auto& [nonce, system_version] : t.recent_nonces) {
      if (nonce == req.response_nonce()) version = system_version;
    }
    if (req.has_error_detail()) {
      registry_.Nacked(agent_, type, req.error_detail().message());
      log::Warn("agent rejected a response", {{"agent", agent_}, {"type", type}, {"version", version},
                                               {"error", req.error_detail().message()}});
    } else if (!version.empty()) {
      registry_.Acked(agent_, type, version);
    }
  }
  if (subscriptions_change) t.send = true;
}

void DeltaProtocol::SetResources(Resources resources) {
  resources_ = std::move(resources);
  for (auto& [type, t] : types_) {
    if (resources_->TypeVersion(type) != t.synced_version) t.send = true;
  }
}

bool DeltaProtocol::NextResponse(grpc::ByteBuffer* out) {
  if (!resources_) return false;
  // A type with nothing new for this agent sends nothing; the next flagged one may.
  for (;;) {
    auto [next, state] = TakeNextToSend(types_);
    if (!next) return false;
    const std::string& type = *next;
    TypeState& t = *state;
    Response head;
    ResponseBytes bytes;
    size_t updated = 0;
    auto wanted = [&](const std::string& name) { return t.wildcard || t.names.count(name); };
    resources_->ForEach(type, [&](const std::string& name, const ResourcePtr& r) {
      if (!wanted(name)) return;
      auto cv = t.client_versions.find(name);
      if (cv != t.client_versions.end() && cv->second == r->version) return;
      bytes.AddResource(*r);
      ++updated;
      t.client_versions[name] = r->version;
    });
    for (auto cv = t.client_versions.begin(); cv != t.client_versions.end();) {
      if (resources_->Find(type, cv->first) && wanted(cv->first)) {
        ++cv;
        continue;
      }
      head.add_removed_resources(cv->first);
      if (t.names.count(cv->first)) t.told_missing.insert(cv->first);  // not again below
      cv = t.client_versions.erase(cv);
    }
    for (const auto& n : t.names) {
      if (!resources_->Find(type, n) && t.told_missing.insert(n).second) head.add_removed_resources(n);
    }
    const bool resumed = std::exchange(t.resumed, false);
    t.synced_version = resources_->TypeVersion(type);
    if (updated == 0 && head.removed_resources().empty()) {
      // It resumed holding exactly the current version: proxy status shows it in sync.
      if (resumed) registry_.Resumed(agent_, type, t.synced_version);
      continue;
    }
    head.set_type_url(type);
    head.set_system_version_info(t.synced_version);
    head.set_nonce(NextNonce());
    t.recent_nonces.emplace_back(head.nonce(), head.system_version_info());
    if (t.recent_nonces.size() > kRecentNonces) t.recent_nonces.pop_front();
    registry_.Sent(agent_, type, head.system_version_info());
    std::move(bytes).Finish(head, out);
    return true;
  }
}

}  // namespace meshplug::control_plane::xds
