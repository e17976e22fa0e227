#include "resources/kinds.h"

#include <algorithm>

#include "common/strings.h"
#include "meshplug/v1/resources.pb.h"

namespace meshplug::resources {
namespace {

namespace mv1 = meshplug::mesh::v1;

const std::vector<KindInfo>& Table() {
  static const auto* table = new std::vector<KindInfo>{
      {Kind::kNamespace, "Namespace", {"v1"}, Scope::kCluster, {"namespaces", "ns"},
       &mv1::Namespace::default_instance()},
      {Kind::kService, "Service", {"v1"}, Scope::kNamespaced, {"services", "svc"},
       &mv1::Service::default_instance()},
      {Kind::kWorkload, "Workload", {"meshplug.io/v1"}, Scope::kNamespaced, {"workloads", "wl"},
       &mv1::Workload::default_instance()},
      {Kind::kMeshConfig,
       "MeshConfig",
       {"config.openservicemesh.io/v1alpha2", "config.openservicemesh.io/v1alpha1"},
       Scope::kCluster,
       {"meshconfigs", "meshconfig"},
       &mv1::MeshConfig::default_instance()},
      {Kind::kPlugin, "Plugin", {"plugin.flomesh.io/v1alpha1"}, Scope::kCluster, {"plugins", "pi"},
       &mv1::Plugin::default_instance(), /*plugin_policy=*/true},
      {Kind::kPluginChain, "PluginChain", {"plugin.flomesh.io/v1alpha1"}, Scope::kNamespaced,
       {"pluginchains", "pichn"}, &mv1::PluginChain::default_instance(), /*plugin_policy=*/true},
      {Kind::kPluginConfig, "PluginConfig", {"plugin.flomesh.io/v1alpha1"}, Scope::kNamespaced,
       {"pluginconfigs", "picfg"}, &mv1::PluginConfig::default_instance(), /*plugin_policy=*/true},
      {Kind::kHTTPRoute,
       "HTTPRoute",
       {"gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"},
       Scope::kNamespaced,
       {"httproutes"},
       &mv1::HTTPRoute::default_instance()},
  };
  return *table;
}

}  // namespace

std::span<const KindInfo> AllKinds() { return Table(); }

const KindInfo& Info(Kind kind) {
  // The table is in enum order.
  return Table()[static_cast<size_t>(kind)];
}

const std::string& KindName(Kind kind) { return Info(kind).name; }

const KindInfo* FindKind(std::string_view name) {
  for (const auto& k : Table()) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

const KindInfo* ResolveKind(std::string_view typed) {
  const std::string lower = Lower(typed);
  for (const auto& k : Table()) {
    if (Lower(k.name) == lower || std::find(k.aliases.begin(), k.aliases.end(), lower) != k.aliases.end()) {
      return &k;
    }
  }
  return nullptr;
}

const KindInfo* FindKindByMessage(std::string_view full_name) {
  for (const auto& k : Table()) {
    if (k.prototype->GetDescriptor()->full_name() == full_name) return &k;
  }
  return nullptr;
}

std::string KindNames() {
  std::vector<std::string_view> names;
  for (const auto& k : Table()) names.push_back(k.name);
  return Join(names, ", ");
}

}  // namespace meshplug::resources
