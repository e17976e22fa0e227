#include "control_plane/resources/kinds.h"

#include <algorithm>
#include <cctype>

#include "meshplug/v1/resources.pb.h"

namespace meshplug::resources {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

const std::vector<KindInfo>& Table() {
  static const auto* table = new std::vector<KindInfo>{
      {"Namespace", {"v1"}, Scope::kCluster, {"namespaces", "ns"},
       &meshplug::mesh::v1::Namespace::default_instance()},
      {"Service", {"v1"}, Scope::kNamespaced, {"services", "svc"},
       &meshplug::mesh::v1::Service::default_instance()},
      {"Workload", {"meshplug.io/v1"}, Scope::kNamespaced, {"workloads", "wl"},
       &meshplug::mesh::v1::Workload::default_instance()},
      {"MeshConfig",
       {"config.openservicemesh.io/v1alpha2", "config.openservicemesh.io/v1alpha1"},
       Scope::kCluster,
       {"meshconfigs", "meshconfig"},
       &meshplug::mesh::v1::MeshConfig::default_instance()},
      {"Plugin", {"plugin.flomesh.io/v1alpha1"}, Scope::kCluster, {"plugins", "pi"},
       &meshplug::mesh::v1::Plugin::default_instance()},
      {"PluginChain", {"plugin.flomesh.io/v1alpha1"}, Scope::kNamespaced,
       {"pluginchains", "pichn"}, &meshplug::mesh::v1::PluginChain::default_instance()},
      {"PluginConfig", {"plugin.flomesh.io/v1alpha1"}, Scope::kNamespaced,
       {"pluginconfigs", "picfg"}, &meshplug::mesh::v1::PluginConfig::default_instance()},
  };
  return *table;
}

}  // namespace

std::span<const KindInfo> AllKinds() { return Table(); }

const KindInfo* FindKind(std::string_view kind) {
  for (const auto& k : Table()) {
    if (k.kind == kind) return &k;
  }
  return nullptr;
}

const KindInfo* ResolveKind(std::string_view typed) {
  const std::string lower = Lower(typed);
  for (const auto& k : Table()) {
    if (Lower(k.kind) == lower ||
        std::find(k.aliases.begin(), k.aliases.end(), lower) != k.aliases.end()) {
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
  std::string out;
  for (const auto& k : Table()) {
    if (!out.empty()) out += ", ";
    out += k.kind;
  }
  return out;
}

}  // namespace meshplug::resources
