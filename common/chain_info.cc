#include "common/chain_info.h"

#include "common/strings.h"

namespace meshplug {
namespace {

using namespace builtin_names;

}  // namespace

std::span<const ChainInfo> Chains() {
  static const auto* chains = new std::vector<ChainInfo>{
      {"inbound-tcp", "inbound_tcp", true, false,
       {{kTlsTermination, 130}, {kTcpRouting, 120}, {kTcpLoadBalancing, 110}, {kTcpDefault, 100}}},
      {"inbound-http", "inbound_http", true, true,
       {{kTlsTermination, 180}, {kHttpRouting, 170}, {kMetrics, 160}, {kTracing, 150}, {kLogging, 140},
        {kThrottleService, 130}, {kThrottleRoute, 120}, {kHttpLoadBalancing, 110}, {kHttpDefault, 100}}},
      {"outbound-tcp", "outbound_tcp", false, false,
       {{kTcpRouting, 120}, {kTcpLoadBalancing, 110}, {kTcpDefault, 100}}},
      {"outbound-http", "outbound_http", false, true,
       {{kHttpRouting, 160}, {kMetrics, 150}, {kTracing, 140}, {kLogging, 130}, {kCircuitBreaker, 120},
        {kHttpLoadBalancing, 110}, {kHttpDefault, 100}}},
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
