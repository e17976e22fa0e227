#include "control_plane/xds/resources.h"

#include "common/hash.h"

namespace meshplug::control_plane::xds {

const std::map<std::string, ResourcePtr>& AgentResources::Of(const std::string& type_url) const {
  static const std::map<std::string, ResourcePtr> kNone;
  auto it = by_type.find(type_url);
  return it == by_type.end() ? kNone : it->second;
}

ResourcePtr ResourceInterner::Intern(const std::string& name, const google::protobuf::Message& msg) {
  // ResourceVersion(msg), from the bytes needed anyway.
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
  r->any.set_type_url(xds_types::TypeOf(msg.GetDescriptor()).url);
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

std::shared_ptr<const AgentResources> ToResources(const v1::Snapshot& snap, ResourceInterner& interner,
                                                  const AgentResources* base) {
  auto out = std::make_shared<AgentResources>();
  if (base) out->by_type = base->by_type;
  xds_types::ForEachResource(snap, [&](const xds_types::ResourceType& type, const google::protobuf::Message& msg) {
    const std::string name = type.name_of(msg);
    out->by_type[type.url][name] = interner.Intern(name, msg);
  });
  for (const auto& type : xds_types::TypeUrls()) {
    std::map<std::string, std::string> versions;
    for (const auto& [name, r] : out->Of(type)) versions.emplace(name, r->version);
    out->type_versions[type] = xds_types::TypeVersion(versions);
  }
  out->version = xds_types::SnapshotVersion(out->type_versions);
  return out;
}

v1::Snapshot ToSnapshot(const AgentResources& resources) {
  v1::Snapshot snap;
  snap.set_version(resources.version);
  for (const auto& [type, named] : resources.by_type) {
    const xds_types::ResourceType& t = *xds_types::FindType(type);  // ToResources made only our types
    for (const auto& [name, r] : named) xds_types::AddResource(snap, t)->ParseFromString(r->any.value());
  }
  return snap;
}

}  // namespace meshplug::control_plane::xds
