#include "control_plane/xds/node_identity.h"

#include <arpa/inet.h>

#include <cmath>

#include "common/agent_id.h"
#include "common/strings.h"
#include "resources/object.h"

namespace meshplug::control_plane::xds {
namespace {

using google::protobuf::Value;

absl::Status Bad(const std::string& field, const std::string& reason) {
  return absl::InvalidArgumentError(Cat("node.", field, ": ", reason));
}

absl::StatusOr<int32_t> Port(const Value& v, const std::string& field) {
  double d = 0;
  if (v.kind_case() == Value::kNumberValue) {
    d = v.number_value();
  } else if (v.kind_case() == Value::kStringValue) {
    char* end = nullptr;
    d = std::strtod(v.string_value().c_str(), &end);
    if (end == v.string_value().c_str() || *end != '\0') return Bad(field, "must be a port number");
  } else {
    return Bad(field, "must be a port number");
  }
  if (d != std::floor(d) || d < 1 || d > 65535) return Bad(field, Cat(d, " is not a port (1-65535)"));
  return static_cast<int32_t>(d);
}

}  // namespace

absl::StatusOr<mesh::v1::Workload> WorkloadFromNode(const envoy::config::core::v3::Node& node) {
  mesh::v1::Workload wl;
  resources::SetTypeFields(resources::Info(resources::Kind::kWorkload), wl);
  if (node.id().empty()) return Bad("id", "required: the workload name");
  wl.mutable_metadata()->set_name(node.id());
  const auto& md = node.metadata().fields();
  auto str = [&](const char* key) -> std::string {
    auto it = md.find(key);
    return it != md.end() && it->second.kind_case() == Value::kStringValue ? it->second.string_value() : "";
  };
  if (str("namespace").empty()) return Bad("metadata.namespace", "required");
  wl.mutable_metadata()->set_namespace_(str("namespace"));
  (*wl.mutable_metadata()->mutable_annotations())[kRegisteredBy] = "agent";
  if (auto it = md.find("labels"); it != md.end()) {
    if (it->second.kind_case() != Value::kStructValue) return Bad("metadata.labels", "must be an object");
    for (const auto& [k, v] : it->second.struct_value().fields()) {
      if (v.kind_case() != Value::kStringValue) return Bad(Cat("metadata.labels.", k), "must be a string");
      (*wl.mutable_metadata()->mutable_labels())[k] = v.string_value();
    }
  }
  auto* spec = wl.mutable_spec();
  spec->set_service_account(str("service_account"));
  spec->set_address(str("address"));
  if (auto it = md.find("inbound_port"); it != md.end()) {
    auto p = Port(it->second, "metadata.inbound_port");
    if (!p.ok()) return p.status();
    spec->set_inbound_port(*p);
  }
  if (auto it = md.find("app_ports"); it != md.end()) {
    if (it->second.kind_case() != Value::kListValue) return Bad("metadata.app_ports", "must be a list");
    for (int i = 0; i < it->second.list_value().values_size(); ++i) {
      auto p = Port(it->second.list_value().values(i), Cat("metadata.app_ports[", i, "]"));
      if (!p.ok()) return p.status();
      spec->add_app_ports(*p);
    }
  }
  return wl;
}

absl::StatusOr<std::string> AdminAddressFromNode(const envoy::config::core::v3::Node& node) {
  const auto& md = node.metadata().fields();
  auto it = md.find("admin_address");
  if (it == md.end()) return std::string();
  const std::string field = "metadata.admin_address";
  if (it->second.kind_case() != Value::kStringValue) return Bad(field, "must be a string \"IP:port\"");
  const std::string& address = it->second.string_value();
  const std::optional<HostAndPort> split = SplitHostPort(address);
  const std::string host = split ? split->host : "";
  in6_addr ip{};
  const bool v4 = inet_pton(AF_INET, host.c_str(), &ip) == 1, v6 = !v4 && inet_pton(AF_INET6, host.c_str(), &ip) == 1;
  if (!(v4 || v6) || !ParsePort(split->port)) {
    return Bad(field, Cat("\"", address.substr(0, 64), "\" is not IP:port"));
  }
  // The workload's own address, or loopback (a control plane on the same machine): never
  // another host for the control plane and Prometheus to read.
  const auto workload = md.find("address");
  const bool loopback = IsLoopback(host);
  const bool own = workload != md.end() && workload->second.string_value() == host;
  if (!loopback && !own) {
    return Bad(field, Cat(host, " is neither loopback nor the workload's address (metadata.address)"));
  }
  return address;
}

std::string AgentId(const mesh::v1::Workload& workload) {
  return ::meshplug::AgentId(workload.metadata().namespace_(), workload.metadata().name());
}

}  // namespace meshplug::control_plane::xds
