// Manifests several tests start from: the reference scenario's namespaces (monitored by
// "osm") and its two services, and the MeshConfig that turns plugin policy on.
#pragma once

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

}  // namespace meshplug::control_plane::testing
