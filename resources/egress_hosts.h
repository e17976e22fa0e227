// Which destinations a workload may call (like Istio's Sidecar egress hosts): entries
// "NAMESPACE/NAME", where NAMESPACE may be "." (the workload's own) or "*" (any) and NAME
// may be "*" (every Service of that namespace). From a Namespace's annotation
// meshplug.io/egress-hosts ("./*, auth/ext-auth"; "" for none), else MeshConfig
// spec.traffic.egressHosts; neither: every Service. An agent receives only the Services
// its workload may call, so a mesh of many workloads that declare them does not send
// every Service to everyone. It trims configuration, as Istio's Sidecar does: a call to
// an out-of-scope Service's address is egress (refused with egressPolicy: refuse).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace meshplug::resources {

// On a Namespace: its workloads' egress hosts, comma-separated (over MeshConfig's).
inline constexpr const char* kEgressHostsAnnotation = "meshplug.io/egress-hosts";
inline constexpr size_t kMaxEgressHosts = 256;

struct EgressHost {
  std::string ns;    // a namespace, "." or "*"
  std::string name;  // a Service name or "*"
};

// RFC 1035 label, as Kubernetes requires of Service names: a Service's name becomes the
// first label of its hosts ("<name>.<namespace>").
bool IsDnsLabel(std::string_view s);
// RFC 1123 label (may start with a digit), as namespace names are.
bool IsDnsLabel1123(std::string_view s);

// Parses entries; an error names the first bad one and says what an entry is.
absl::StatusOr<std::vector<EgressHost>> ParseEgressHosts(const std::vector<std::string>& entries);
// The annotation's comma-separated list, entries trimmed; a blank annotation is no entry
// (the namespace's workloads may call no Service).
std::vector<std::string> SplitEgressHosts(std::string_view annotation);

// Whether Service `ns`/`name` is among `hosts` for a workload of namespace `own`.
bool EgressAllows(const std::vector<EgressHost>& hosts, const std::string& own, std::string_view ns,
                  std::string_view name);

}  // namespace meshplug::resources
