// The four chains and the built-in modules: one table that the control plane (defaults,
// validation, translation), the agent (chain set build, xDS completeness) and config
// dumps all read, so a chain or module name is written once.
#pragma once

#include <google/protobuf/repeated_ptr_field.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "meshplug/v1/resources.pb.h"
#include "meshplug/v1/snapshot.pb.h"

namespace meshplug {

// Built-in module names. plugins/builtin implements each; the chain defaults below use them.
namespace builtin_names {
inline constexpr std::string_view kTlsTermination = "tls-termination";
inline constexpr std::string_view kHttpRouting = "http-routing";
inline constexpr std::string_view kMetrics = "metrics";
inline constexpr std::string_view kTracing = "tracing";
inline constexpr std::string_view kLogging = "logging";
inline constexpr std::string_view kThrottleService = "throttle-service";
inline constexpr std::string_view kThrottleRoute = "throttle-route";
inline constexpr std::string_view kCircuitBreaker = "circuit-breaker";
inline constexpr std::string_view kHttpLoadBalancing = "http-load-balancing";
inline constexpr std::string_view kHttpDefault = "http-default";
inline constexpr std::string_view kTcpRouting = "tcp-routing";
inline constexpr std::string_view kTcpLoadBalancing = "tcp-load-balancing";
inline constexpr std::string_view kTcpDefault = "tcp-default";
}  // namespace builtin_names

struct BuiltinDefault {
  std::string_view module;
  uint32_t priority;  // higher runs first
};

struct ChainInfo {
  std::string_view name;  // "inbound-http"
  bool inbound;
  bool http;
  std::vector<BuiltinDefault> builtins;  // before MeshConfig changes them
  // The chain's modules in a snapshot's ChainSet and in MeshConfig's spec.pluginChains.
  const google::protobuf::RepeatedPtrField<v1::ChainModule>& (v1::ChainSet::*modules)() const;
  google::protobuf::RepeatedPtrField<v1::ChainModule>* (v1::ChainSet::*mutable_modules)();
  const google::protobuf::RepeatedPtrField<mesh::v1::BuiltinModule>& (mesh::v1::PluginChainsSpec::*mesh_config)()
      const;
};

// inbound-tcp, inbound-http, outbound-tcp, outbound-http.
std::span<const ChainInfo> Chains();
const ChainInfo* FindChain(std::string_view name);
// "inbound-tcp, inbound-http, outbound-tcp, outbound-http", for error messages.
std::string ChainNames();

// The modules of `chain` in a chain set, or in MeshConfig's spec.pluginChains.
inline const google::protobuf::RepeatedPtrField<v1::ChainModule>& ModulesOf(const v1::ChainSet& chains,
                                                                            const ChainInfo& chain) {
  return (chains.*chain.modules)();
}
inline google::protobuf::RepeatedPtrField<v1::ChainModule>* MutableModulesOf(v1::ChainSet& chains,
                                                                             const ChainInfo& chain) {
  return (chains.*chain.mutable_modules)();
}
inline const google::protobuf::RepeatedPtrField<mesh::v1::BuiltinModule>& ModulesOf(
    const mesh::v1::PluginChainsSpec& chains, const ChainInfo& chain) {
  return (chains.*chain.mesh_config)();
}

}  // namespace meshplug
