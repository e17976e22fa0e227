// The resource kinds meshplug knows: one table of the names users type, apiVersions,
// scope and the typed message each is stored as, and the Kind type every per-kind
// decision switches on (so the compiler points at each place a new kind must be
// handled). Shared by the control plane and meshctl.
#pragma once

#include <google/protobuf/message.h>

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace meshplug::resources {

enum class Kind { kNamespace, kService, kWorkload, kMeshConfig, kPlugin, kPluginChain, kPluginConfig, kHTTPRoute };

enum class Scope { kCluster, kNamespaced };

struct KindInfo {
  Kind id;
  std::string name;                       // "PluginChain"
  std::vector<std::string> api_versions;  // accepted; the first is written back
  Scope scope;
  std::vector<std::string> aliases;  // lower-case plural and short names ("pluginchains", "pichn")
  const google::protobuf::Message* prototype;  // default instance of the typed message
  // Refused while MeshConfig's featureFlags.enablePluginPolicy is false.
  bool plugin_policy = false;

  std::unique_ptr<google::protobuf::Message> New() const {
    return std::unique_ptr<google::protobuf::Message>(prototype->New());
  }
  bool namespaced() const { return scope == Scope::kNamespaced; }
};

std::span<const KindInfo> AllKinds();
const KindInfo& Info(Kind kind);
const std::string& KindName(Kind kind);

// By exact kind name ("Plugin"); nullptr when unknown.
const KindInfo* FindKind(std::string_view name);

// By what a user types: the kind, its plural or short name, in any case ("pi", "Plugins").
const KindInfo* ResolveKind(std::string_view typed);

// By the typed message's full name ("meshplug.mesh.v1.Plugin"), e.g. to read an Any.
const KindInfo* FindKindByMessage(std::string_view full_name);

// "Namespace, Service, ..." for error messages.
std::string KindNames();

// Annotations with a meaning to meshplug.
// On a Workload: an agent registered it (it disappears after the agent's grace period).
inline constexpr const char* kRegisteredBy = "meshplug.io/registered-by";
// On a Namespace: "strict" or "permissive" mTLS for its workloads (over MeshConfig's).
inline constexpr const char* kMtlsModeAnnotation = "meshplug.io/mtls-mode";

}  // namespace meshplug::resources
