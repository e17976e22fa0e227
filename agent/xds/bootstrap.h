// Who the agent is and where its control plane is: from a bootstrap YAML file and flags.
//
// The identity goes into the xDS Node of the stream's first request (docs/spec.md §4, the control
// plane's node_identity.h):
//   id:       the workload name
//   metadata: {namespace, labels: {...}, service_account, address, inbound_port,
//              app_ports: [...], admin_address}
//
// Bootstrap file (every key optional; unknown keys are an error):
//   node:
//     id: web-1
//     namespace: demo
//     labels: {app: web, version: v1}
//     service_account: web
//     address: 10.0.0.7          # where peers' agents reach this workload's inbound listener
//     inbound_port: 15003        # default: the inbound listener's port
//     app_ports: [8080]
//   xds:
//     address: 127.0.0.1:15010   # the control plane
//     protocol: delta            # or sotw
//     ca: |                      # the roots that verify the control plane (or ca_file: PATH)
//       -----BEGIN CERTIFICATE-----
//   join_token: mpt1.…           # buys the first certificate, once (meshctl workload token)
//   identity_file: /var/lib/meshplug/web-1.identity.pem   # key and certificate, mode 0600
//   snapshot_cache: /var/lib/meshplug/web-1.snapshot.json
//
// `meshctl workload token NS/NAME --bootstrap` writes node.id, node.namespace, xds.address,
// xds.ca and join_token.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/agent_id.h"
#include "envoy/config/core/v3/base.pb.h"

namespace meshplug::agent::xds {

struct Bootstrap {
  std::string node_id;
  std::string namespace_;
  std::map<std::string, std::string> labels;
  std::string service_account;
  std::string address;
  uint32_t inbound_port = 0;  // 0: the agent's inbound listener port
  std::vector<uint32_t> app_ports;
  std::string xds_address;
  std::string xds_protocol;  // "delta", "sotw" or empty (delta)
  std::string snapshot_cache;
  std::string xds_ca;       // PEM
  std::string xds_ca_file;  // or a file holding it
  std::string join_token;
  std::string identity_file;

  // "<namespace>/<id>": how the control plane names this agent.
  std::string AgentId() const { return ::meshplug::AgentId(namespace_, node_id); }
  // Every field set in `over` replaces this one's (labels and app ports as a whole).
  void Override(const Bootstrap& over);
};

// Parses a bootstrap document; the error names the key that is wrong.
absl::StatusOr<Bootstrap> ParseBootstrap(const std::string& yaml);
absl::StatusOr<Bootstrap> ReadBootstrapFile(const std::string& path);

// "app=web,version=v1" → {app: web, version: v1}.
absl::StatusOr<std::map<std::string, std::string>> ParseLabels(const std::string& text);
// "8080,9090" → {8080, 9090}.
absl::StatusOr<std::vector<uint32_t>> ParsePorts(const std::string& text);

// Checks what the control plane will require (id and namespace) and the protocol name.
absl::Status Validate(const Bootstrap& b);

// The xDS Node for `b`; `inbound_port` is used when b.inbound_port is 0. `admin_address`
// ("host:port", may be empty) tells the control plane where /stats is, for Prometheus.
envoy::config::core::v3::Node MakeNode(const Bootstrap& b, uint32_t inbound_port, const std::string& admin_address = "");

}  // namespace meshplug::agent::xds
