#include "agent/xds/xds_resources.h"

#include <set>

#include "common/strings.h"

namespace meshplug::agent::xds {
namespace {

const std::string& Url(const char* name) {
  static const auto* urls = new std::map<std::string, std::string>{
      {"AgentSettings", TypeUrl("AgentSettings")},
      {"PluginScript", TypeUrl("PluginScript")},
      {"Cluster", TypeUrl("Cluster")},
      {"Endpoints", TypeUrl("Endpoints")},
      {"Service", TypeUrl("Service")},
      {"ChainSet", TypeUrl("ChainSet")},
  };
  return urls->at(name);
}

std::unique_ptr<google::protobuf::Message> NewMessage(const std::string& type_url) {
  const std::string type = ShortType(type_url);
  if (type_url != TypeUrl(type)) return nullptr;
  if (type == "AgentSettings") return std::make_unique<v1::AgentSettings>();
  if (type == "PluginScript") return std::make_unique<v1::PluginScript>();
  if (type == "Cluster") return std::make_unique<v1::Cluster>();
  if (type == "Endpoints") return std::make_unique<v1::Endpoints>();
  if (type == "Service") return std::make_unique<v1::Service>();
  if (type == "ChainSet") return std::make_unique<v1::ChainSet>();
  return nullptr;
}

template <typename T>
const T& As(const ResourceSet::Entry& e) {
  return static_cast<const T&>(*e.message);
}

}  // namespace

std::string ShortType(const std::string& type_url) { return type_url.substr(type_url.rfind('.') + 1); }

absl::StatusOr<std::shared_ptr<const google::protobuf::Message>> ResourceSet::Decode(const std::string& type_url,
                                                                                     const google::protobuf::Any& any) {
  std::unique_ptr<google::protobuf::Message> msg = NewMessage(type_url);
  if (!msg) return absl::InvalidArgumentError(Cat("unknown resource type ", type_url));
  if (any.type_url() != type_url) {
    return absl::InvalidArgumentError(
        Cat("a ", ShortType(type_url), " response holds a resource of type ", any.type_url()));
  }
  if (!msg->ParseFromString(any.value())) {
    return absl::InvalidArgumentError(Cat("a ", ShortType(type_url), " resource does not parse"));
  }
  return std::shared_ptr<const google::protobuf::Message>(std::move(msg));
}

void ResourceSet::Put(const std::string& type_url, const std::string& name, Entry entry) {
  by_type_[type_url][name] = std::move(entry);
}

void ResourceSet::Remove(const std::string& type_url, const std::string& name) {
  auto it = by_type_.find(type_url);
  if (it != by_type_.end()) it->second.erase(name);
}

void ResourceSet::ReplaceType(const std::string& type_url, Named resources) {
  by_type_[type_url] = std::move(resources);
}

void ResourceSet::SetTypeVersion(const std::string& type_url, const std::string& version) {
  type_versions_[type_url] = version;
}

const ResourceSet::Named& ResourceSet::Of(const std::string& type_url) const {
  static const Named kNone;
  auto it = by_type_.find(type_url);
  return it == by_type_.end() ? kNone : it->second;
}

std::string ResourceSet::TypeVersion(const std::string& type_url) const {
  auto it = type_versions_.find(type_url);
  return it == type_versions_.end() ? "" : it->second;
}

std::map<std::string, std::string> ResourceSet::Versions(const std::string& type_url) const {
  std::map<std::string, std::string> out;
  for (const auto& [name, e] : Of(type_url)) {
    if (!e.version.empty()) out[name] = e.version;
  }
  return out;
}

bool ResourceSet::empty() const { return size() == 0; }

size_t ResourceSet::size() const {
  size_t n = 0;
  for (const auto& [_, named] : by_type_) n += named.size();
  return n;
}

std::vector<std::string> ResourceSet::Missing(bool need_endpoints) const {
  std::vector<std::string> missing;
  const Named& chain_sets = Of(Url("ChainSet"));
  if (chain_sets.empty()) {
    missing.push_back("the chain set (ChainSet \"chains\")");
  } else {
    const Named& scripts = Of(Url("PluginScript"));
    std::set<std::string> reported;
    for (const auto& [_, e] : chain_sets) {
      const auto& set = As<v1::ChainSet>(e);
      for (const auto& [chain, modules] :
           {std::pair{"inbound-tcp", &set.inbound_tcp()}, std::pair{"inbound-http", &set.inbound_http()},
            std::pair{"outbound-tcp", &set.outbound_tcp()}, std::pair{"outbound-http", &set.outbound_http()}}) {
        for (const v1::ChainModule& m : *modules) {
          if (m.source_case() != v1::ChainModule::kScript || scripts.count(m.script())) continue;
          if (reported.insert(m.script()).second) {
            missing.push_back(Cat("PluginScript \"", m.script(), "\" (chain ", chain, ", module ", m.name(), ")"));
          }
        }
      }
    }
  }
  const Named& clusters = Of(Url("Cluster"));
  std::set<std::string> reported;
  auto need_cluster = [&](const std::string& cluster, const std::string& service) {
    if (clusters.count(cluster) || !reported.insert(cluster).second) return;
    missing.push_back(Cat("Cluster \"", cluster, "\" (service ", service, ")"));
  };
  for (const auto& [name, e] : Of(Url("Service"))) {
    const auto& s = As<v1::Service>(e);
    for (const auto& route : s.routes()) {
      for (const auto& wc : route.clusters()) need_cluster(wc.cluster(), name);
    }
    for (const auto& port : s.ports()) {
      for (const auto& wc : port.tcp_clusters()) need_cluster(wc.cluster(), name);
    }
  }
  const Named& endpoints = Of(Url("Endpoints"));
  if (!need_endpoints) return missing;
  for (const auto& [name, _] : clusters) {
    if (!endpoints.count(name)) missing.push_back(Cat("Endpoints \"", name, "\" (cluster ", name, ")"));
  }
  return missing;
}

std::vector<std::string> ResourceSet::ClustersWithoutEndpoints() const {
  std::vector<std::string> out;
  const Named& endpoints = Of(Url("Endpoints"));
  for (const auto& [name, _] : Of(Url("Cluster"))) {
    if (!endpoints.count(name)) out.push_back(name);
  }
  return out;
}

std::vector<std::string> ResourceSet::Unreferenced() const {
  std::set<std::string> scripts, clusters;
  for (const auto& [_, e] : Of(Url("ChainSet"))) {
    const auto& set = As<v1::ChainSet>(e);
    for (const auto* modules : {&set.inbound_tcp(), &set.inbound_http(), &set.outbound_tcp(), &set.outbound_http()}) {
      for (const v1::ChainModule& m : *modules) {
        if (m.source_case() == v1::ChainModule::kScript) scripts.insert(m.script());
      }
    }
  }
  for (const auto& [_, e] : Of(Url("Service"))) {
    const auto& s = As<v1::Service>(e);
    for (const auto& route : s.routes()) {
      for (const auto& wc : route.clusters()) clusters.insert(wc.cluster());
    }
    for (const auto& port : s.ports()) {
      for (const auto& wc : port.tcp_clusters()) clusters.insert(wc.cluster());
    }
  }
  std::vector<std::string> out;
  for (const auto& [name, _] : Of(Url("PluginScript"))) {
    if (!scripts.count(name)) out.push_back(Cat("PluginScript \"", name, "\""));
  }
  for (const auto& [name, _] : Of(Url("Cluster"))) {
    if (!clusters.count(name)) out.push_back(Cat("Cluster \"", name, "\""));
  }
  const Named& cluster_set = Of(Url("Cluster"));
  for (const auto& [name, _] : Of(Url("Endpoints"))) {
    if (!cluster_set.count(name)) out.push_back(Cat("Endpoints \"", name, "\""));
  }
  return out;
}

v1::Snapshot ResourceSet::Assemble() const {
  v1::Snapshot snap;
  for (const auto& [_, e] : Of(Url("AgentSettings"))) snap.mutable_settings()->CopyFrom(*e.message);
  for (const auto& [_, e] : Of(Url("ChainSet"))) snap.mutable_chains()->CopyFrom(*e.message);
  for (const auto& [_, e] : Of(Url("PluginScript"))) snap.add_scripts()->CopyFrom(*e.message);
  for (const auto& [_, e] : Of(Url("Service"))) snap.add_services()->CopyFrom(*e.message);
  for (const auto& [_, e] : Of(Url("Cluster"))) snap.add_clusters()->CopyFrom(*e.message);
  for (const auto& [_, e] : Of(Url("Endpoints"))) snap.add_endpoints()->CopyFrom(*e.message);
  std::map<std::string, std::string> type_versions;
  for (const auto& [type, named] : by_type_) {
    std::map<std::string, std::string> versions;
    for (const auto& [name, e] : named) versions[name] = ::meshplug::xds_types::ResourceVersion(*e.message);
    type_versions[type] = ::meshplug::xds_types::TypeVersion(versions);
  }
  snap.set_version(::meshplug::xds_types::SnapshotVersion(type_versions));
  return snap;
}

}  // namespace meshplug::agent::xds
