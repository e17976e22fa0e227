#include "agent/intercept/rules.h"

#include <arpa/inet.h>

#include <algorithm>

#include "common/strings.h"

namespace meshplug::agent::intercept {
namespace {

constexpr const char* kOutput = "MESHPLUG_OUTPUT";
constexpr const char* kInbound = "MESHPLUG_INBOUND";
constexpr const char* kToOutbound = "MESHPLUG_REDIRECT";
constexpr const char* kToInbound = "MESHPLUG_IN_REDIRECT";
constexpr const char* kDns = "MESHPLUG_DNS";

bool IsV6(const std::string& cidr) { return cidr.find(':') != std::string::npos; }

// "10.0.0.0/8" or an address alone; the prefix within the family's size.
bool ValidCidr(const std::string& cidr) {
  const size_t slash = cidr.find('/');
  const std::string address = cidr.substr(0, slash);
  unsigned char buf[16];
  const bool v6 = IsV6(address);
  if (inet_pton(v6 ? AF_INET6 : AF_INET, address.c_str(), buf) != 1) return false;
  if (slash == std::string::npos) return true;
  const std::string prefix = cidr.substr(slash + 1);
  if (prefix.empty() || prefix.size() > 3 || !std::all_of(prefix.begin(), prefix.end(), ::isdigit)) return false;
  return std::stoi(prefix) <= (v6 ? 128 : 32);
}

}  // namespace

const std::vector<std::string>& ChainNames() {
  static const std::vector<std::string> names = {kOutput, kInbound, kToOutbound, kToInbound, kDns};
  return names;
}

absl::Status Validate(const Options& o) {
  if (std::find(o.exclude_inbound_ports.begin(), o.exclude_inbound_ports.end(), o.outbound_port) !=
      o.exclude_inbound_ports.end()) {
    return absl::InvalidArgumentError(
        "--exclude_inbound_ports: the outbound port is never reachable from outside (it would lend the workload's "
        "identity to anyone)");
  }
  if (o.dns_port != 0 && (o.dns_port == o.outbound_port || o.dns_port == o.inbound_port)) {
    return absl::InvalidArgumentError("--dns_port must differ from the listener ports");
  }
  if (o.outbound_port == 0 || o.inbound_port == 0 || o.outbound_port == o.inbound_port) {
    return absl::InvalidArgumentError("--outbound_port and --inbound_port must be two different ports (1-65535)");
  }
  const bool all = std::find(o.include_inbound_ports.begin(), o.include_inbound_ports.end(), "*") !=
                   o.include_inbound_ports.end();
  for (const auto& p : o.include_inbound_ports) {
    if (p == "*") continue;
    if (all) return absl::InvalidArgumentError("--include_inbound_ports: \"*\" means every port; list no others with it");
    if (!ParsePort(p)) return absl::InvalidArgumentError(Cat("--include_inbound_ports: \"", p, "\" is not a port (1-65535)"));
  }
  for (const auto& cidr : o.exclude_outbound_cidrs) {
    if (!ValidCidr(cidr)) return absl::InvalidArgumentError(Cat("--exclude_outbound_cidrs: \"", cidr, "\" is not an address or CIDR"));
  }
  for (uint16_t p : o.exclude_inbound_ports) {
    if (p == 0) return absl::InvalidArgumentError("--exclude_inbound_ports: 0 is not a port");
  }
  for (uint16_t p : o.exclude_outbound_ports) {
    if (p == 0) return absl::InvalidArgumentError("--exclude_outbound_ports: 0 is not a port");
  }
  return absl::OkStatus();
}

std::string InstallScript(const Options& o, bool ipv6) {
  std::string s = "*nat\n";
  for (const auto& chain : ChainNames()) s += Cat(":", chain, " - [0:0]\n");
  for (const auto& chain : ChainNames()) s += Cat("-F ", chain, "\n");
  // One jump from each built-in chain: the caller removes earlier rules first (Remove).
  s += Cat("-A PREROUTING -p tcp -j ", kInbound, "\n");
  s += Cat("-A OUTPUT -p tcp -j ", kOutput, "\n");
  // Only a connection's opening segment: connections open before the rules existed (the
  // agent's own to the control plane, in a namespace whose connection tracking starts
  // with these rules) are picked up mid-stream by conntrack and must stay as they are.
  s += Cat("-A ", kToOutbound, " -p tcp --syn -j REDIRECT --to-ports ", o.outbound_port, "\n");
  s += Cat("-A ", kToInbound, " -p tcp --syn -j REDIRECT --to-ports ", o.inbound_port, "\n");

  // Inbound: connections arriving for the app. Peer agents connect to the inbound listener
  // directly; the outbound listener is for this workload's own traffic only, so a
  // connection from outside to its port goes to the inbound listener like any other.
  s += Cat("-A ", kInbound, " -p tcp --dport ", o.inbound_port, " -j RETURN\n");
  s += Cat("-A ", kInbound, " -p tcp --dport ", o.outbound_port, " -j ", kToInbound, "\n");  // whatever the lists say
  for (uint16_t port : o.exclude_inbound_ports) s += Cat("-A ", kInbound, " -p tcp --dport ", port, " -j RETURN\n");
  const bool all = o.include_inbound_ports.size() == 1 && o.include_inbound_ports[0] == "*";
  if (all) {
    s += Cat("-A ", kInbound, " -p tcp -j ", kToInbound, "\n");
  } else {
    for (const auto& port : o.include_inbound_ports) s += Cat("-A ", kInbound, " -p tcp --dport ", port, " -j ", kToInbound, "\n");
  }

  // Outbound: the agent's own connections go out as they are (it must run as proxy_uid, or
  // they would come back to it); so does loopback traffic (the app calling itself; a
  // Service's virtual address is not local, so calls to it are redirected).
  s += Cat("-A ", kOutput, " -m owner --uid-owner ", o.proxy_uid, " -j RETURN\n");
  s += Cat("-A ", kOutput, " -o lo -j RETURN\n");
  for (uint16_t port : o.exclude_outbound_ports) s += Cat("-A ", kOutput, " -p tcp --dport ", port, " -j RETURN\n");
  for (const auto& cidr : o.exclude_outbound_cidrs) {
    if (IsV6(cidr) == ipv6) s += Cat("-A ", kOutput, " -d ", cidr, " -j RETURN\n");
  }
  s += Cat("-A ", kOutput, " -j ", kToOutbound, "\n");

  // DNS: the app's queries go to the agent, which answers mesh names and relays the rest
  // (as its own uid, so they leave).
  if (o.dns_port != 0 && !ipv6) {
    s += Cat("-A OUTPUT -p udp --dport 53 -j ", kDns, "\n");
    s += Cat("-A ", kDns, " -m owner --uid-owner ", o.proxy_uid, " -j RETURN\n");
    s += Cat("-A ", kDns, " -p udp -j REDIRECT --to-ports ", o.dns_port, "\n");
  }
  s += "COMMIT\n";
  return s;
}

std::vector<std::vector<std::string>> RemoveCommands() {
  std::vector<std::vector<std::string>> out = {{"-t", "nat", "-D", "PREROUTING", "-p", "tcp", "-j", kInbound},
                                               {"-t", "nat", "-D", "OUTPUT", "-p", "tcp", "-j", kOutput},
                                               {"-t", "nat", "-D", "OUTPUT", "-p", "udp", "--dport", "53", "-j", kDns}};
  for (const auto& chain : ChainNames()) out.push_back({"-t", "nat", "-F", chain});
  for (const auto& chain : ChainNames()) out.push_back({"-t", "nat", "-X", chain});
  return out;
}

}  // namespace meshplug::agent::intercept
