// The four chains and the built-in modules: one table that the control plane (defaults,
// validation, translation), the agent (chain set build, xDS completeness) and config
// dumps all read, so a chain or module name is written once.
#pragma once

#include <google/protobuf/message.h>
#include <google/protobuf/repeated_ptr_field.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

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
  std::string_view name;   // "inbound-http"
  std::string_view field;  // "inbound_http": the field of v1::ChainSet and of MeshConfig's pluginChains
  bool inbound;
  bool http;
  std::vector<BuiltinDefault> builtins;  // before MeshConfig changes them
};

// inbound-tcp, inbound-http, outbound-tcp, outbound-http.
std::span<const ChainInfo> Chains();
const ChainInfo* FindChain(std::string_view name);
// "inbound-tcp, inbound-http, outbound-tcp, outbound-http", for error messages.
std::string ChainNames();

// The modules of `chain` in a message whose fields are named like ChainInfo::field
// (v1::ChainSet, mesh.v1.PluginChainsSpec).
template <typename Module>
const google::protobuf::RepeatedPtrField<Module>& ModulesOf(const google::protobuf::Message& chains,
                                                            const ChainInfo& chain) {
  const auto* field = chains.GetDescriptor()->FindFieldByName(std::string(chain.field));
  return chains.GetReflection()->GetRepeatedPtrField<Module>(chains, field);
}
template <typename Module>
google::protobuf::RepeatedPtrField<Module>* MutableModulesOf(google::protobuf::Message& chains,
                                                             const ChainInfo& chain) {
  const auto* field = chains.GetDescriptor()->FindFieldByName(std::string(chain.field));
  return chains.GetReflection()->MutableRepeatedPtrField<Module>(&chains, field);
}

}  // namespace meshplug
