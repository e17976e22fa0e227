#include "agent/xds/xds_resources.h"

#include <set>

#include "common/chain_info.h"
#include "common/strings.h"

namespace meshplug::agent::xds {
namespace {

// Calls fn(chain, module) for each script module of each chain set.
template <typename Fn>
void ForEachScriptModule(const ResourceSet::Named& chain_sets, Fn fn) {
  for (const auto& [_, e] : chain_sets) {
    for (const ChainInfo& chain : Chains()) {
      for (const auto& m : ModulesOf(static_cast<const v1::ChainSet&>(*e.message), chain)) {
        if (m.source_case() == v1::ChainModule::kScript) fn(chain, m);
      }
    }
  }
}

// Calls fn(cluster, service name) for each cluster a service's routes and TCP ports name.
template <typename Fn>
void ForEachReferencedCluster(const ResourceSet::Named& services, Fn fn) {
  for (const auto& [name, e] : services) {
    const auto& s = static_cast<const v1::Service&>(*e.message);
    for (const auto& route : s.routes()) {
      for (const auto& wc : route.clusters()) fn(wc.cluster(), name);
    }
    for (const auto& port : s.ports()) {
      for (const auto& wc : port.tcp_clusters()) fn(wc.cluster(), name);
    }
  }
}

}  // namespace

std::string ShortType(const std::string& type_url) {
  const xds_types::ResourceType* type = xds_types::FindType(type_url);
  return type ? type->message : type_url;
}

absl::StatusOr<std::shared_ptr<const google::protobuf::Message>> ResourceSet::Decode(const std::string& type_url,
                                                                                     const google::protobuf::Any& any) {
  const xds_types::ResourceType* type = xds_types::FindType(type_url);
  if (!type) return absl::InvalidArgumentError(Cat("unknown resource type ", type_url));
  std::unique_ptr<google::protobuf::Message> msg(type->prototype->New());
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
  const Named& chain_sets = Of(UrlOf<v1::ChainSet>());
  if (chain_sets.empty()) {
    missing.push_back("the chain set (ChainSet \"chains\")");
  } else {
    const Named& scripts = Of(UrlOf<v1::PluginScript>());
    std::set<std::string> reported;
    ForEachScriptModule(chain_sets, [&](const ChainInfo& chain, const v1::ChainModule& m) {
      if (!scripts.count(m.script()) && reported.insert(m.script()).second) {
        missing.push_back(Cat("PluginScript \"", m.script(), "\" (chain ", chain.name, ", module ", m.name(), ")"));
      }
    });
  }
  const Named& clusters = Of(UrlOf<v1::Cluster>());
  std::set<std::string> reported;
  ForEachReferencedCluster(Of(UrlOf<v1::Service>()), [&](const std::string& cluster, const std::string& service) {
    if (!clusters.count(cluster) && reported.insert(cluster).second) {
      missing.push_back(Cat("Cluster \"", cluster, "\" (service ", service, ")"));
    }
  });
  const Named& endpoints = Of(UrlOf<v1::Endpoints>());
  if (!need_endpoints) return missing;
  for (const auto& [name, _] : clusters) {
    if (!endpoints.count(name)) missing.push_back(Cat("Endpoints \"", name, "\" (cluster ", name, ")"));
  }
  return missing;
}

std::vector<std::string> ResourceSet::ClustersWithoutEndpoints() const {
  std::vector<std::string> out;
  const Named& endpoints = Of(UrlOf<v1::Endpoints>());
  for (const auto& [name, _] : Of(UrlOf<v1::Cluster>())) {
    if (!endpoints.count(name)) out.push_back(name);
  }
  return out;
}

std::vector<std::string> ResourceSet::Unreferenced() const {
  std::set<std::string> scripts, clusters;
  ForEachScriptModule(Of(UrlOf<v1::ChainSet>()),
                      [&](const ChainInfo&, const v1::ChainModule& m) { scripts.insert(m.script()); });
  ForEachReferencedCluster(Of(UrlOf<v1::Service>()),
                           [&](const std::string& cluster, const std::string&) { clusters.insert(cluster); });
  std::vector<std::string> out;
  for (const auto& [name, _] : Of(UrlOf<v1::PluginScript>())) {
    if (!scripts.count(name)) out.push_back(Cat("PluginScript \"", name, "\""));
  }
  for (const auto& [name, _] : Of(UrlOf<v1::Cluster>())) {
    if (!clusters.count(name)) out.push_back(Cat("Cluster \"", name, "\""));
  }
  const Named& cluster_set = Of(UrlOf<v1::Cluster>());
  for (const auto& [name, e] : Of(UrlOf<v1::Endpoints>())) {
    // A page after the first is named "<cluster>#k": its cluster is in the message.
    if (!cluster_set.count(static_cast<const v1::Endpoints&>(*e.message).cluster())) {
      out.push_back(Cat("Endpoints \"", name, "\""));
    }
  }
  return out;
}

v1::Snapshot ResourceSet::Assemble() const {
  v1::Snapshot snap;
  std::map<std::string, std::string> type_versions;
  for (const auto& [url, named] : by_type_) {
    const xds_types::ResourceType* type = xds_types::FindType(url);
    if (type == nullptr) continue;  // Merge keeps only our types
    std::map<std::string, std::string> versions;
    for (const auto& [name, e] : named) {
      xds_types::AddResource(snap, *type)->CopyFrom(*e.message);
      versions[name] = xds_types::ResourceVersion(*e.message);
    }
    type_versions[url] = xds_types::TypeVersion(versions);
  }
  snap.set_version(xds_types::SnapshotVersion(type_versions));
  return snap;
}

}  // namespace meshplug::agent::xds
