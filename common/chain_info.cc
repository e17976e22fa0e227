#include "common/chain_info.h"

#include "common/strings.h"

namespace meshplug {
namespace {

using namespace builtin_names;
using v1::ChainSet;
using mesh::v1::PluginChainsSpec;

}  // namespace

std::span<const ChainInfo> Chains() {
  static const auto* chains = new std::vector<ChainInfo>{
      {"inbound-tcp", true, false,
       {{kTlsTermination, 130}, {kTcpRouting, 120}, {kTcpLoadBalancing, 110}, {kTcpDefault, 100}},
       &ChainSet::inbound_tcp, &ChainSet::mutable_inbound_tcp, &PluginChainsSpec::inbound_tcp},
      {"inbound-http", true, true,
       {{kTlsTermination, 180}, {kHttpRouting, 170}, {kMetrics, 160}, {kTracing, 150}, {kLogging, 140},
        {kThrottleService, 130}, {kThrottleRoute, 120}, {kHttpLoadBalancing, 110}, {kHttpDefault, 100}},
       &ChainSet::inbound_http, &ChainSet::mutable_inbound_http, &PluginChainsSpec::inbound_http},
      {"outbound-tcp", false, false, {{kTcpRouting, 120}, {kTcpLoadBalancing, 110}, {kTcpDefault, 100}},
       &ChainSet::outbound_tcp, &ChainSet::mutable_outbound_tcp, &PluginChainsSpec::outbound_tcp},
      {"outbound-http", false, true,
       {{kHttpRouting, 160}, {kMetrics, 150}, {kTracing, 140}, {kLogging, 130}, {kCircuitBreaker, 120},
        {kHttpLoadBalancing, 110}, {kHttpDefault, 100}},
       &ChainSet::outbound_http, &ChainSet::mutable_outbound_http, &PluginChainsSpec::outbound_http},
  };
  return *chains;
}

const ChainInfo* FindChain(std::string_view name) {
  for (const auto& c : Chains()) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

std::string ChainNames() {
  std::vector<std::string_view> names;
  for (const auto& c : Chains()) names.push_back(c.name);
  return Join(names, ", ");
}

}  // namespace meshplug
