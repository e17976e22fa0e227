#include "agent/xds/bootstrap.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <set>
#include <sstream>

#include "agent/xds/server_list.h"
#include "common/strings.h"
#include "common/x509.h"
#include "common/xds_types.h"

namespace meshplug::agent::xds {
namespace {

absl::Status Bad(const std::string& key, const std::string& reason) {
  return absl::InvalidArgumentError(Cat("bootstrap: ", key, ": ", reason));
}

std::string Where(const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  return m.line >= 0 ? Cat(" (line ", m.line + 1, ")") : "";
}

absl::Status OnlyKeys(const YAML::Node& map, const std::string& path, const std::set<std::string>& allowed) {
  if (!map.IsMap()) return Bad(path.empty() ? "document" : path, Cat("must be a mapping", Where(map)));
  for (const auto& kv : map) {
    const std::string key = kv.first.as<std::string>();
    if (!allowed.count(key)) {
      return Bad(path.empty() ? key : path + "." + key,
                 Cat("unknown key", Where(kv.first), "; known: ", Join(allowed, ", ")));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Scalar(const YAML::Node& n, const std::string& key) {
  if (!n.IsScalar()) return Bad(key, Cat("must be a string", Where(n)));
  return n.Scalar();
}

absl::StatusOr<uint32_t> Port(const std::string& text, const std::string& key) {
  const std::optional<uint16_t> port = ParsePort(text);
  if (!port) return Bad(key, Cat("\"", text, "\" is not a port (1-65535)"));
  return *port;
}

absl::StatusOr<Bootstrap> FromYaml(const YAML::Node& root) {
  Bootstrap b;
  if (!root || root.IsNull()) return b;
  if (auto st = OnlyKeys(root, "", {"node", "xds", "snapshot_cache", "join_token", "identity_file"}); !st.ok()) return st;
  if (const YAML::Node node = root["node"]) {
    if (auto st = OnlyKeys(node, "node",
                           {"id", "namespace", "labels", "service_account", "address", "inbound_port", "app_ports"});
        !st.ok()) {
      return st;
    }
    for (auto [key, out] : {std::pair{"id", &b.node_id}, std::pair{"namespace", &b.namespace_},
                            std::pair{"service_account", &b.service_account}, std::pair{"address", &b.address}}) {
      if (!node[key]) continue;
      auto v = Scalar(node[key], Cat("node.", key));
      if (!v.ok()) return v.status();
      *out = *v;
    }
    if (const YAML::Node labels = node["labels"]) {
      if (!labels.IsMap()) return Bad("node.labels", Cat("must be a mapping", Where(labels)));
      for (const auto& kv : labels) {
        const std::string k = kv.first.as<std::string>();
        auto v = Scalar(kv.second, "node.labels." + k);
        if (!v.ok()) return v.status();
        b.labels[k] = *v;
      }
    }
    if (const YAML::Node p = node["inbound_port"]) {
      auto s = Scalar(p, "node.inbound_port");
      if (!s.ok()) return s.status();
      auto port = Port(*s, "node.inbound_port");
      if (!port.ok()) return port.status();
      b.inbound_port = *port;
    }
    if (const YAML::Node ports = node["app_ports"]) {
      if (!ports.IsSequence()) return Bad("node.app_ports", Cat("must be a list", Where(ports)));
      for (size_t i = 0; i < ports.size(); ++i) {
        const std::string key = Cat("node.app_ports[", i, "]");
        auto s = Scalar(ports[i], key);
        if (!s.ok()) return s.status();
        auto port = Port(*s, key);
        if (!port.ok()) return port.status();
        b.app_ports.push_back(*port);
      }
    }
  }
  if (const YAML::Node xds = root["xds"]) {
    if (auto st = OnlyKeys(xds, "xds", {"address", "protocol", "ca", "ca_file"}); !st.ok()) return st;
    for (auto [key, out] : {std::pair{"address", &b.xds_address}, std::pair{"protocol", &b.xds_protocol},
                            std::pair{"ca", &b.xds_ca}, std::pair{"ca_file", &b.xds_ca_file}}) {
      if (!xds[key]) continue;
      auto v = Scalar(xds[key], Cat("xds.", key));
      if (!v.ok()) return v.status();
      *out = *v;
    }
  }
  for (auto [key, out] : {std::pair{"snapshot_cache", &b.snapshot_cache}, std::pair{"join_token", &b.join_token},
                          std::pair{"identity_file", &b.identity_file}}) {
    if (!root[key]) continue;
    auto v = Scalar(root[key], key);
    if (!v.ok()) return v.status();
    *out = *v;
  }
  return b;
}

}  // namespace

void Bootstrap::Override(const Bootstrap& o) {
  auto take = [](std::string& to, const std::string& from) {
    if (!from.empty()) to = from;
  };
  take(node_id, o.node_id);
  take(namespace_, o.namespace_);
  take(service_account, o.service_account);
  take(address, o.address);
  take(xds_address, o.xds_address);
  take(xds_protocol, o.xds_protocol);
  take(snapshot_cache, o.snapshot_cache);
  take(xds_ca, o.xds_ca);
  take(xds_ca_file, o.xds_ca_file);
  take(join_token, o.join_token);
  take(identity_file, o.identity_file);
  if (!o.labels.empty()) labels = o.labels;
  if (o.inbound_port != 0) inbound_port = o.inbound_port;
  if (!o.app_ports.empty()) app_ports = o.app_ports;
}

absl::StatusOr<Bootstrap> ParseBootstrap(const std::string& yaml) {
  try {
    return FromYaml(YAML::Load(yaml));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(Cat("bootstrap: ", e.what()));
  }
}

absl::StatusOr<Bootstrap> ReadBootstrapFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(Cat("cannot read bootstrap file ", path));
  std::ostringstream content;
  content << in.rdbuf();
  auto b = ParseBootstrap(content.str());
  if (!b.ok()) return absl::InvalidArgumentError(Cat(path, ": ", std::string(b.status().message())));
  return b;
}

absl::StatusOr<std::map<std::string, std::string>> ParseLabels(const std::string& text) {
  std::string bad;
  auto labels = meshplug::ParseLabels(text, &bad);
  if (!labels) return absl::InvalidArgumentError(Cat("label \"", bad, "\" is not key=value"));
  return *std::move(labels);
}

absl::StatusOr<std::vector<uint32_t>> ParsePorts(const std::string& text) {
  std::vector<uint32_t> out;
  std::istringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    if (item.empty()) continue;
    auto port = Port(item, "app_ports");
    if (!port.ok()) return port.status();
    out.push_back(*port);
  }
  return out;
}

absl::Status Validate(const Bootstrap& b) {
  if (b.node_id.empty()) return absl::InvalidArgumentError("the node id is required (--node_id or node.id)");
  if (b.namespace_.empty()) {
    return absl::InvalidArgumentError("the namespace is required (--namespace or node.namespace)");
  }
  if (b.xds_address.empty()) {
    return absl::InvalidArgumentError("the control plane address is required (--xds_address or xds.address)");
  }
  if (absl::Status st = CheckServerList(b.xds_address); !st.ok()) return st;
  if (!b.xds_protocol.empty() && b.xds_protocol != "delta" && b.xds_protocol != "sotw") {
    return absl::InvalidArgumentError(Cat("xDS protocol \"", b.xds_protocol, "\" is not delta or sotw"));
  }
  if (b.xds_ca.empty() && b.xds_ca_file.empty()) {
    return absl::InvalidArgumentError(
        "the roots that verify the control plane are required (--xds_ca_file, xds.ca or xds.ca_file; "
        "`meshctl workload token NS/NAME --bootstrap` writes a bootstrap with them)");
  }
  if (!b.xds_ca.empty()) {
    if (auto certs = x509::SplitCertificates(b.xds_ca); !certs.ok()) {
      return absl::InvalidArgumentError(Cat("the control plane's CA (", b.xds_ca_file.empty() ? "xds.ca" : b.xds_ca_file,
                                            "): ", certs.status().message()));
    }
  }
  return absl::OkStatus();
}

envoy::config::core::v3::Node MakeNode(const Bootstrap& b, uint32_t inbound_port, const std::string& admin_address) {
  envoy::config::core::v3::Node node;
  node.set_id(b.node_id);
  node.set_user_agent_name(xds_types::kAgentUserAgentName);
  node.set_user_agent_version("0.1.0");
  node.add_client_features(xds_types::kScriptsByContentFeature);
  auto& md = *node.mutable_metadata()->mutable_fields();
  md["namespace"].set_string_value(b.namespace_);
  auto& labels = *md["labels"].mutable_struct_value()->mutable_fields();
  for (const auto& [k, v] : b.labels) labels[k].set_string_value(v);
  if (!b.service_account.empty()) md["service_account"].set_string_value(b.service_account);
  if (!b.address.empty()) md["address"].set_string_value(b.address);
  const uint32_t port = b.inbound_port != 0 ? b.inbound_port : inbound_port;
  if (port != 0) md["inbound_port"].set_number_value(port);
  auto& ports = *md["app_ports"].mutable_list_value();
  for (uint32_t p : b.app_ports) ports.add_values()->set_number_value(p);
  if (!admin_address.empty()) md["admin_address"].set_string_value(admin_address);
  return node;
}

}  // namespace meshplug::agent::xds
