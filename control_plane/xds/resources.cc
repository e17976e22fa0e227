#include "control_plane/xds/resources.h"

#include "common/hash.h"

namespace meshplug::xds {

const std::vector<std::string>& TypeUrls() {
  static const auto* urls = new std::vector<std::string>{
      TypeUrl("AgentSettings"), TypeUrl("PluginScript"), TypeUrl("Cluster"),
      TypeUrl("Endpoints"),     TypeUrl("Service"),      TypeUrl("ChainSet"),
  };
  return *urls;
}

std::string TypeUrl(const std::string& message_name) { return kTypePrefix + message_name; }

const std::map<std::string, ResourcePtr>& AgentResources::Of(const std::string& type_url) const {
  static const std::map<std::string, ResourcePtr> kNone;
  auto it = by_type.find(type_url);
  return it == by_type.end() ? kNone : it->second;
}

ResourcePtr ResourceInterner::Intern(const std::string& name, const google::protobuf::Message& msg) {
  std::string bytes = DeterministicBytes(msg);
  std::string version = Sha256Hex(bytes).substr(0, 16);
  // The type is part of the key: an empty Endpoints{cluster: X} has the bytes of Cluster{name: X}.
  const std::string key = msg.GetDescriptor()->full_name() + "\n" + name + "\n" + version;
  std::lock_guard lock(mu_);
  auto& slot = by_key_[key];
  if (auto existing = slot.lock()) return existing;
  auto r = std::make_shared<EncodedResource>();
  r->name = name;
  r->version = std::move(version);
  r->any.set_type_url(TypeUrl(msg.GetDescriptor()->name()));
  r->any.set_value(std::move(bytes));
  slot = r;
  if (by_key_.size() > 1024 && by_key_.size() % 1024 == 0) {
    std::erase_if(by_key_, [](const auto& kv) { return kv.second.expired(); });
  }
  return r;
}

size_t ResourceInterner::size() {
  std::lock_guard lock(mu_);
  std::erase_if(by_key_, [](const auto& kv) { return kv.second.expired(); });
  return by_key_.size();
}

std::shared_ptr<const AgentResources> ToResources(const v1::Snapshot& snap, ResourceInterner& interner) {
  auto out = std::make_shared<AgentResources>();
  out->version = snap.version();
  auto add = [&](const std::string& name, const google::protobuf::Message& msg) {
    auto r = interner.Intern(name, msg);
    out->by_type[r->any.type_url()][name] = std::move(r);
  };
  add("agent", snap.settings());
  add("chains", snap.chains());
  for (const auto& s : snap.scripts()) add(s.name(), s);
  for (const auto& s : snap.services()) add(s.inbound() ? s.name() + "|inbound" : s.name(), s);
  for (const auto& c : snap.clusters()) add(c.name(), c);
  for (const auto& e : snap.endpoints()) add(e.cluster(), e);
  for (const auto& type : TypeUrls()) {
    std::string digest;
    for (const auto& [name, r] : out->Of(type)) digest += name + "=" + r->version + ";";
    out->type_versions[type] = Sha256Hex(digest).substr(0, 16);
  }
  return out;
}

v1::Snapshot ToSnapshot(const AgentResources& resources) {
  v1::Snapshot snap;
  snap.set_version(resources.version);
  for (const auto& [type, named] : resources.by_type) {
    for (const auto& [name, r] : named) {
      if (type == TypeUrl("AgentSettings")) r->any.UnpackTo(snap.mutable_settings());
      if (type == TypeUrl("ChainSet")) r->any.UnpackTo(snap.mutable_chains());
      if (type == TypeUrl("PluginScript")) r->any.UnpackTo(snap.add_scripts());
      if (type == TypeUrl("Service")) r->any.UnpackTo(snap.add_services());
      if (type == TypeUrl("Cluster")) r->any.UnpackTo(snap.add_clusters());
      if (type == TypeUrl("Endpoints")) r->any.UnpackTo(snap.add_endpoints());
    }
  }
  return snap;
}

}  // namespace meshplug::xds
