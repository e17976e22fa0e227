// The iptables rules that make an agent a transparent sidecar in its workload's network
// namespace (what osm-edge's and Istio's init containers install): outbound TCP goes to the
// agent's outbound listener, inbound TCP to the app's ports goes to its inbound listener,
// and the agent's own connections (its uid) leave untouched. Rules live in chains of their
// own (MESHPLUG_*), so installing again replaces them and removing leaves nothing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace meshplug::agent::intercept {

struct Options {
  uint16_t outbound_port = 15001;
  uint16_t inbound_port = 15003;
  uint32_t proxy_uid = 1337;  // the agent runs as this user; its traffic is not redirected
  // DNS (UDP 53) to the agent's DNS server on this port (agent --dns_port); 0: left alone.
  // IPv4 only: the agent answers on 127.0.0.1.
  uint16_t dns_port = 0;
  // Inbound: the app's ports to redirect ("*": every port), minus the excluded ones.
  std::vector<std::string> include_inbound_ports = {"*"};
  std::vector<uint16_t> exclude_inbound_ports;
  // Outbound: destinations left alone (the control plane, say), by CIDR and by port.
  std::vector<std::string> exclude_outbound_cidrs;
  std::vector<uint16_t> exclude_outbound_ports;
};

// Checks what the options say (ports, CIDRs of the given family); the error names the flag.
absl::Status Validate(const Options& options);

// Input for `iptables-restore --noflush` (`ipv6`: `ip6tables-restore`) that (re)creates the
// MESHPLUG chains of the nat table from `options`. CIDRs of the other family are skipped.
std::string InstallScript(const Options& options, bool ipv6);
// iptables arguments, in order, that unhook, flush and delete the MESHPLUG chains; each
// may fail only because there is nothing to remove (the caller ignores that).
std::vector<std::vector<std::string>> RemoveCommands();
const std::vector<std::string>& ChainNames();

}  // namespace meshplug::agent::intercept
