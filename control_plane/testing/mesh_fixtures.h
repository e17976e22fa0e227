// Manifests tests and benchmarks start from: the reference scenario's namespaces
// (monitored by "osm") and its two services, the MeshConfig that turns plugin policy on,
// and Plugin/PluginChain documents built from their few varying fields.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>

namespace meshplug::control_plane::testing {

inline constexpr const char* kCurlHttpbinMesh = R"(
apiVersion: v1
kind: Namespace
metadata: {name: curl, labels: {openservicemesh.io/monitored-by: osm}}
---
apiVersion: v1
kind: Namespace
metadata: {name: httpbin, labels: {openservicemesh.io/monitored-by: osm}}
---
apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: httpbin}
spec: {ports: [{port: 14001}], selector: {app: httpbin}}
---
apiVersion: v1
kind: Service
metadata: {name: curl, namespace: curl}
spec: {ports: [{port: 80}], selector: {app: curl}}
)";

inline constexpr const char* kPluginPolicyOn = R"(
apiVersion: config.openservicemesh.io/v1alpha2
kind: MeshConfig
metadata: {name: osm-mesh-config}
spec: {featureFlags: {enablePluginPolicy: true}}
)";

// A Plugin manifest. The script goes in a literal block, so any Lua text fits.
inline std::string PluginYaml(std::string_view name, int priority,
                              std::string_view script = "function on_request() end") {
  std::string out = "apiVersion: plugin.flomesh.io/v1alpha1\nkind: Plugin\nmetadata: {name: ";
  out.append(name).append("}\nspec:\n  priority: ").append(std::to_string(priority)).append("\n  script: |-\n");
  size_t start = 0;
  while (start <= script.size()) {
    const size_t end = std::min(script.find('\n', start), script.size());
    out.append("    ").append(script.substr(start, end - start)).append("\n");
    start = end + 1;
  }
  return out;
}

// Pods labelled app=<app>, as spec.selectors of a PluginChain.
inline std::string AppSelector(std::string_view app) {
  return "{podSelector: {matchLabels: {app: " + std::string(app) + "}}}";
}

// A PluginChain manifest that mounts `plugins` (comma-separated) on `chain`. `selectors` is
// the YAML of spec.selectors; empty: every pod in every namespace.
inline std::string PluginChainYaml(std::string_view ns, std::string_view name, std::string_view chain,
                                   std::string_view plugins, std::string_view selectors = "") {
  std::string out = "apiVersion: plugin.flomesh.io/v1alpha1\nkind: PluginChain\nmetadata: {name: ";
  out.append(name).append(", namespace: ").append(ns).append("}\nspec:\n  chains: [{name: ").append(chain);
  out.append(", plugins: [").append(plugins).append("]}]\n");
  if (!selectors.empty()) out.append("  selectors: ").append(selectors).append("\n");
  return out;
}

}  // namespace meshplug::control_plane::testing
