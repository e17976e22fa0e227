#include "common/xds_types.h"

#include "common/hash.h"
#include "meshplug/v1/snapshot.pb.h"

namespace meshplug::xds_types {

const std::vector<std::string>& TypeUrls() {
  static const auto* urls = new std::vector<std::string>{
      TypeUrl("AgentSettings"), TypeUrl("PluginScript"), TypeUrl("Cluster"),
      TypeUrl("Endpoints"),     TypeUrl("Service"),      TypeUrl("ChainSet"),
  };
  return *urls;
}

std::string TypeUrl(const std::string& message_name) { return kTypePrefix + message_name; }

std::string ResourceName(const google::protobuf::Message& m) {
  const std::string& type = m.GetDescriptor()->name();
  if (type == "AgentSettings") return "agent";
  if (type == "ChainSet") {
    const auto& c = static_cast<const v1::ChainSet&>(m);
    return c.name().empty() ? "chains" : c.name();
  }
  if (type == "PluginScript") return static_cast<const v1::PluginScript&>(m).name();
  if (type == "Cluster") return static_cast<const v1::Cluster&>(m).name();
  if (type == "Endpoints") return static_cast<const v1::Endpoints&>(m).cluster();
  if (type == "Service") {
    const auto& s = static_cast<const v1::Service&>(m);
    return s.inbound() ? s.name() + "|inbound" : s.name();
  }
  return "";
}

std::string ResourceVersion(const google::protobuf::Message& resource) {
  return Sha256Hex(DeterministicBytes(resource)).substr(0, 16);
}

std::string TypeVersion(const std::map<std::string, std::string>& name_versions) {
  std::string digest;
  for (const auto& [name, version] : name_versions) digest += name + "=" + version + ";";
  return Sha256Hex(digest).substr(0, 16);
}

std::string SnapshotVersion(const std::map<std::string, std::string>& type_versions) {
  static const std::string kEmpty = TypeVersion({});
  std::string digest;
  for (const auto& type : TypeUrls()) {
    auto it = type_versions.find(type);
    digest += type + "=" + (it == type_versions.end() ? kEmpty : it->second) + ";";
  }
  return Sha256Hex(digest).substr(0, 16);
}

}  // namespace meshplug::xds_types
