#include "control_plane/validation/validation.h"

#include <arpa/inet.h>

#include <algorithm>
#include <set>

#include "absl/time/time.h"
#include "common/chain_info.h"
#include "common/strings.h"

#include "plugins/lua/script_check.h"
#include "common/route_rules.h"
#include "resources/egress_hosts.h"

namespace meshplug::control_plane::validation {

using resources::Meta;
namespace {

namespace mv1 = meshplug::mesh::v1;
using resources::Kind;

// Collects the first problem found, as "field: reason".
class Checker {
 public:
  explicit Checker(const Document& doc) : doc_(doc) {}

  bool Fail(const std::string& field, const std::string& reason) {
    if (error_.empty()) error_ = Cat(field, ": ", reason);
    return false;
  }
  bool ok() const { return error_.empty(); }
  absl::Status status() const {
    return ok() ? absl::OkStatus()
                : absl::InvalidArgumentError(Cat(doc_.Where(), ": ", error_));
  }

 private:
  const Document& doc_;
  std::string error_;
};

bool IsDnsSubdomain(const std::string& s, size_t max_len) {
  if (s.empty() || s.size() > max_len) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(s.front()) || !alnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [&](char c) { return alnum(c) || c == '-' || c == '.'; });
}

void CheckMetadata(const Document& doc, Checker& c) {
  const auto& meta = Meta(*doc.object);
  if (meta.name().empty()) {
    c.Fail("metadata.name", "required");
  } else if (!IsDnsSubdomain(meta.name(), 253)) {
    c.Fail("metadata.name", Cat("\"", meta.name(),
                                         "\" must be lower-case letters, digits, '-' or '.', "
                                         "starting and ending with a letter or digit"));
  }
  if (doc.kind->namespaced()) {
    if (meta.namespace_().empty()) {
      c.Fail("metadata.namespace", Cat("required: ", doc.kind->name, " is namespaced"));
    } else if (!IsDnsSubdomain(meta.namespace_(), 63) ||
               meta.namespace_().find('.') != std::string::npos) {
      c.Fail("metadata.namespace", Cat("\"", meta.namespace_(), "\" is not a valid namespace name"));
    }
  } else if (!meta.namespace_().empty()) {
    c.Fail("metadata.namespace", Cat("must be empty: ", doc.kind->name, " is cluster-scoped"));
  }
  for (const auto& [k, v] : meta.labels()) {
    if (k.empty()) c.Fail("metadata.labels", "label keys must not be empty");
  }
}

bool InPortRange(int64_t p) { return p >= 1 && p <= 65535; }

void CheckPriority(const std::string& field, int64_t priority, Checker& c) {
  if (priority < 0 || priority > 65535) {
    c.Fail(field, Cat(priority, " is outside 0-65535"));
  }
}

void CheckSelector(const std::string& field, const mv1::LabelSelector& sel, Checker& c) {
  for (const auto& [k, v] : sel.match_labels()) {
    if (k.empty()) c.Fail(field + ".matchLabels", "keys must not be empty");
  }
  for (int i = 0; i < sel.match_expressions_size(); ++i) {
    const auto& req = sel.match_expressions(i);
    const std::string f = Cat(field, ".matchExpressions[", i, "]");
    if (req.key().empty()) c.Fail(f + ".key", "required");
    const std::string& op = req.operator_();
    if (op == "In" || op == "NotIn") {
      if (req.values().empty()) c.Fail(f + ".values", Cat("required for operator ", op));
    } else if (op == "Exists" || op == "DoesNotExist") {
      if (!req.values().empty()) c.Fail(f + ".values", Cat("must be empty for operator ", op));
    } else {
      c.Fail(f + ".operator", Cat("\"", op, "\" is not one of In, NotIn, Exists, DoesNotExist"));
    }
  }
}

void CheckService(const mv1::Service& svc, Checker& c) {
  if (!resources::IsDnsLabel(svc.metadata().name())) {
    c.Fail("metadata.name", Cat("\"", svc.metadata().name(),
                                "\" is not a Service name: lower-case letters, digits and '-', starting with a "
                                "letter, at most 63 (it is the first label of the service's host names)"));
  }
  if (svc.spec().ports().empty()) c.Fail("spec.ports", "at least one port is required");
  std::set<int64_t> seen;
  for (int i = 0; i < svc.spec().ports_size(); ++i) {
    const auto& p = svc.spec().ports(i);
    const std::string f = Cat("spec.ports[", i, "]");
    if (!InPortRange(p.port())) c.Fail(f + ".port", Cat(p.port(), " is outside 1-65535"));
    if (p.target_port() != 0 && !InPortRange(p.target_port())) {
      c.Fail(f + ".targetPort", Cat(p.target_port(), " is outside 1-65535"));
    }
    if (!p.protocol().empty() && p.protocol() != "http" && p.protocol() != "http2" && p.protocol() != "grpc" &&
        p.protocol() != "tcp") {
      c.Fail(f + ".protocol", Cat("\"", p.protocol(), "\" is not http, http2, grpc or tcp"));
    }
    if (!seen.insert(p.port()).second) c.Fail(f + ".port", Cat(p.port(), " is listed twice"));
  }
}

// Gateway API's bounds: so one route cannot grow every agent's snapshot without end.
constexpr int kMaxParentRefs = 32, kMaxRules = 16, kMaxMatches = 8, kMaxHeaderMatches = 16, kMaxBackends = 16;
constexpr int32_t kMaxBackendWeight = 1'000'000;

// `ref` names a core Service (the only parent and backend kind of a mesh route).
void CheckServiceRef(const std::string& f, const std::string& group, const std::string& kind, const std::string& name,
                     Checker& c) {
  if (!group.empty() && group != "core") c.Fail(f + ".group", Cat("\"", group, "\" is not \"\" (core)"));
  if (!kind.empty() && kind != "Service") c.Fail(f + ".kind", Cat("\"", kind, "\" is not Service"));
  if (!resources::IsDnsLabel(name)) c.Fail(f + ".name", Cat("\"", name, "\" is not a Service name"));
}

void CheckRegex(const std::string& f, const std::string& pattern, Checker& c) {
  // As agents compile it (gRPC's xDS client allows more memory).
  re2::RE2 re(pattern, RouteRegexOptions());
  if (!re.ok()) c.Fail(f, Cat("\"", pattern, "\" is not an RE2 regular expression: ", re.error()));
}

// `text` is a duration such as "250ms" from `lo` to `hi`.
bool DurationIn(const std::string& text, absl::Duration lo, absl::Duration hi) {
  absl::Duration d;
  return absl::ParseDuration(text, &d) && d >= lo && d <= hi;
}

void CheckRouteMatch(const std::string& f, const mv1::HTTPRouteMatch& m, Checker& c) {
  const auto& path = m.path();
  if (path.type() == "RegularExpression") {
    CheckRegex(f + ".path.value", path.value(), c);
  } else if (path.type().empty() || path.type() == "PathPrefix" || path.type() == "Exact") {
    if (!path.value().empty() && path.value()[0] != '/') c.Fail(f + ".path.value", Cat("\"", path.value(), "\" does not start with /"));
  } else {
    c.Fail(f + ".path.type", Cat("\"", path.type(), "\" is not PathPrefix, Exact or RegularExpression"));
  }
  if (m.headers_size() > kMaxHeaderMatches) c.Fail(f + ".headers", Cat("more than ", kMaxHeaderMatches, " header matches"));
  for (int i = 0; i < m.headers_size(); ++i) {
    const auto& h = m.headers(i);
    const std::string hf = Cat(f, ".headers[", i, "]");
    if (!IsHttpToken(h.name())) c.Fail(hf + ".name", Cat("\"", h.name(), "\" is not an HTTP header name"));
    if (h.type() == "RegularExpression") {
      CheckRegex(hf + ".value", h.value(), c);
    } else if (!h.type().empty() && h.type() != "Exact") {
      c.Fail(hf + ".type", Cat("\"", h.type(), "\" is not Exact or RegularExpression"));
    }
  }
  static const std::set<std::string> kMethods = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"};
  if (!m.method().empty() && !kMethods.count(m.method())) {
    c.Fail(f + ".method", Cat("\"", m.method(), "\" is not an HTTP method (GET, POST, ... in upper case)"));
  }
}

void CheckHTTPRoute(const mv1::HTTPRoute& route, Checker& c) {
  const auto& spec = route.spec();
  if (spec.parent_refs().empty()) c.Fail("spec.parentRefs", "at least one Service is required");
  if (spec.parent_refs_size() > kMaxParentRefs) c.Fail("spec.parentRefs", Cat("more than ", kMaxParentRefs));
  for (int i = 0; i < spec.parent_refs_size(); ++i) {
    const auto& p = spec.parent_refs(i);
    const std::string f = Cat("spec.parentRefs[", i, "]");
    CheckServiceRef(f, p.group(), p.kind(), p.name(), c);
    if (p.port() != 0 && !InPortRange(p.port())) c.Fail(f + ".port", Cat(p.port(), " is outside 1-65535"));
  }
  if (spec.rules().empty()) c.Fail("spec.rules", "at least one rule is required");
  if (spec.rules_size() > kMaxRules) c.Fail("spec.rules", Cat("more than ", kMaxRules, " rules"));
  for (int i = 0; i < spec.rules_size(); ++i) {
    const auto& rule = spec.rules(i);
    const std::string f = Cat("spec.rules[", i, "]");
    if (rule.matches_size() > kMaxMatches) c.Fail(f + ".matches", Cat("more than ", kMaxMatches, " matches"));
    for (int m = 0; m < rule.matches_size(); ++m) CheckRouteMatch(Cat(f, ".matches[", m, "]"), rule.matches(m), c);
    if (rule.backend_refs().empty()) c.Fail(f + ".backendRefs", "at least one backend Service is required");
    if (rule.backend_refs_size() > kMaxBackends) c.Fail(f + ".backendRefs", Cat("more than ", kMaxBackends, " backends"));
    bool any_weight = false;
    for (int b = 0; b < rule.backend_refs_size(); ++b) {
      const auto& ref = rule.backend_refs(b);
      const std::string bf = Cat(f, ".backendRefs[", b, "]");
      CheckServiceRef(bf, ref.group(), ref.kind(), ref.name(), c);
      if (!InPortRange(ref.port())) c.Fail(bf + ".port", ref.port() == 0 ? "required" : Cat(ref.port(), " is outside 1-65535"));
      if (ref.has_weight() && (ref.weight() < 0 || ref.weight() > kMaxBackendWeight)) {
        c.Fail(bf + ".weight", Cat(ref.weight(), " is outside 0-", kMaxBackendWeight));
      }
      any_weight = any_weight || !ref.has_weight() || ref.weight() > 0;
    }
    if (!rule.backend_refs().empty() && !any_weight) c.Fail(f + ".backendRefs", "every weight is 0: no call could go anywhere");
    if (rule.has_retry()) {
      const auto& retry = rule.retry();
      if (retry.attempts() < 0 || retry.attempts() > static_cast<int32_t>(kMaxRetries)) {
        c.Fail(f + ".retry.attempts", Cat(retry.attempts(), " is outside 0-", kMaxRetries));
      }
      for (int32_t code : retry.codes()) {
        if (code < 400 || code > 599) c.Fail(f + ".retry.codes", Cat(code, " is not a status from 400 to 599"));
      }
      if (!retry.backoff().empty() && !DurationIn(retry.backoff(), absl::Milliseconds(1), absl::Seconds(1))) {
        c.Fail(f + ".retry.backoff", Cat("\"", retry.backoff(), "\" is not a duration from 1ms to 1s"));
      }
    }
    if (rule.has_fault()) {
      const auto& fault = rule.fault();
      auto percent = [&](const std::string& field, bool has, int32_t p) {
        if (!has) c.Fail(Cat(f, ".fault.", field), "required: the share of calls, 0-100");
        if (p < 0 || p > 100) c.Fail(Cat(f, ".fault.", field), Cat(p, " is outside 0-100"));
      };
      if (!fault.has_delay() && !fault.has_abort()) c.Fail(f + ".fault", "neither delay nor abort");
      if (fault.has_delay()) {
        if (!DurationIn(fault.delay().fixed_delay(), absl::Milliseconds(1), absl::FromChrono(kMaxFaultDelay))) {
          c.Fail(f + ".fault.delay.fixedDelay",
                 Cat("\"", fault.delay().fixed_delay(), "\" is not a duration from 1ms to ",
                     absl::FormatDuration(absl::FromChrono(kMaxFaultDelay))));
        }
        percent("delay.percent", fault.delay().has_percent(), fault.delay().percent());
      }
      if (fault.has_abort()) {
        // An error status gRPC clients see as the same code whether an agent or gRPC's own
        // fault filter answers (the two map 413 and 504 differently).
        const int32_t status = fault.abort().http_status();
        if (status < static_cast<int32_t>(kMinFaultStatus) || status > static_cast<int32_t>(kMaxFaultStatus) ||
            status == 413 || status == 504) {
          c.Fail(f + ".fault.abort.httpStatus", Cat(status, " is not an error status from 400 to 599 (but 413 and 504)"));
        }
        percent("abort.percent", fault.abort().has_percent(), fault.abort().percent());
      }
    }
    if (const std::string& t = rule.timeouts().request(); !t.empty()) {
      if (!DurationIn(t, absl::Milliseconds(1), absl::Hours(24)) && !DurationIn(t, absl::ZeroDuration(), absl::ZeroDuration())) {
        c.Fail(f + ".timeouts.request", Cat("\"", t, "\" is not a duration from 1ms to 24h (such as 500ms or 2s), or 0s"));
      }
    }
  }
}

void CheckWorkload(const mv1::Workload& wl, Checker& c) {
  const auto& spec = wl.spec();
  // It becomes the path of the workload's SPIFFE ID.
  if (!spec.service_account().empty() && (!IsDnsSubdomain(spec.service_account(), 253))) {
    c.Fail("spec.serviceAccount", Cat("\"", spec.service_account(), "\" must be lower-case letters, digits, '-' or '.'"));
  }
  if (!spec.address().empty()) {
    unsigned char buf[16];
    if (inet_pton(AF_INET, spec.address().c_str(), buf) != 1 &&
        inet_pton(AF_INET6, spec.address().c_str(), buf) != 1) {
      c.Fail("spec.address", Cat("\"", spec.address(), "\" is not an IP address"));
    }
  }
  if (spec.inbound_port() != 0 && !InPortRange(spec.inbound_port())) {
    c.Fail("spec.inboundPort", Cat(spec.inbound_port(), " is outside 1-65535"));
  }
  for (int i = 0; i < spec.app_ports_size(); ++i) {
    if (!InPortRange(spec.app_ports(i))) {
      c.Fail(Cat("spec.appPorts[", i, "]"), Cat(spec.app_ports(i), " is outside 1-65535"));
    }
  }
}

void CheckMtlsMode(const std::string& field, const std::string& mode, Checker& c) {
  if (mode != "strict" && mode != "permissive") c.Fail(field, Cat("\"", mode, "\" is not strict or permissive"));
}

void CheckEgressHosts(const std::string& field, const std::vector<std::string>& entries, Checker& c) {
  if (auto parsed = resources::ParseEgressHosts(entries); !parsed.ok()) c.Fail(field, std::string(parsed.status().message()));
}

void CheckMeshConfig(const mv1::MeshConfig& mc, Checker& c) {
  const auto& hosts = mc.spec().traffic().egress_hosts();
  CheckEgressHosts("spec.traffic.egressHosts", {hosts.begin(), hosts.end()}, c);
  if (!mc.spec().traffic().mtls_mode().empty()) CheckMtlsMode("spec.traffic.mtlsMode", mc.spec().traffic().mtls_mode(), c);
  if (const std::string& egress = mc.spec().traffic().egress_policy(); !egress.empty() && egress != "passthrough" && egress != "refuse") {
    c.Fail("spec.traffic.egressPolicy", Cat("\"", egress, "\" is not passthrough or refuse"));
  }
  const auto& cert = mc.spec().certificate();
  absl::Duration lifetime;
  if (!cert.service_cert_validity_duration().empty() &&
      (!absl::ParseDuration(cert.service_cert_validity_duration(), &lifetime) || lifetime < absl::Seconds(10) ||
       lifetime > absl::Hours(24 * 365))) {
    c.Fail("spec.certificate.serviceCertValidityDuration",
           Cat("\"", cert.service_cert_validity_duration(), "\" is not a duration between 10s and 8760h (e.g. 24h)"));
  }
  if (!cert.trust_domain().empty() && !IsDnsSubdomain(cert.trust_domain(), 253)) {
    c.Fail("spec.certificate.trustDomain", Cat("\"", cert.trust_domain(), "\" is not a DNS name"));
  }
  for (const ChainInfo& chain : Chains()) {
    const auto& modules = ModulesOf(mc.spec().plugin_chains(), chain);
    for (int i = 0; i < modules.size(); ++i) {
      const auto& m = modules[i];
      const std::string f = Cat("spec.pluginChains.", chain.name, "[", i, "]");
      if (m.plugin().empty()) c.Fail(f + ".plugin", "required");
      CheckPriority(f + ".priority", m.priority(), c);
    }
  }
}

void CheckPlugin(const mv1::Plugin& p, Checker& c) {
  CheckPriority("spec.priority", p.spec().priority(), c);
  if (p.spec().script().empty()) {
    c.Fail("spec.script", "required: the plugin's Lua 5.4 source");
  } else if (auto err = plugins::lua::CheckScript(p.spec().script(), p.metadata().name())) {
    c.Fail("spec.script", *err);
  }
}

void CheckPluginChain(const mv1::PluginChain& pc, Checker& c) {
  if (pc.spec().chains().empty()) c.Fail("spec.chains", "at least one chain is required");
  for (int i = 0; i < pc.spec().chains_size(); ++i) {
    const auto& chain = pc.spec().chains(i);
    const std::string f = Cat("spec.chains[", i, "]");
    if (FindChain(chain.name()) == nullptr) {
      c.Fail(f + ".name", Cat("\"", chain.name(), "\" is not one of ", ChainNames()));
    }
    if (chain.plugins().empty()) c.Fail(f + ".plugins", "at least one plugin is required");
    for (int j = 0; j < chain.plugins_size(); ++j) {
      if (!IsDnsSubdomain(chain.plugins(j), 253)) {
        c.Fail(Cat(f, ".plugins[", j, "]"), Cat("\"", chain.plugins(j), "\" is not a plugin name"));
      }
    }
  }
  CheckSelector("spec.selectors.podSelector", pc.spec().selectors().pod_selector(), c);
  CheckSelector("spec.selectors.namespaceSelector", pc.spec().selectors().namespace_selector(), c);
}

void CheckPluginConfig(const mv1::PluginConfig& pc, Checker& c) {
  if (pc.spec().plugin().empty()) c.Fail("spec.plugin", "required: the name of a Plugin");
  if (pc.spec().destination_refs().empty()) c.Fail("spec.destinationRefs", "at least one Service is required");
  for (int i = 0; i < pc.spec().destination_refs_size(); ++i) {
    const auto& ref = pc.spec().destination_refs(i);
    const std::string f = Cat("spec.destinationRefs[", i, "]");
    if (ref.kind() != "Service") c.Fail(f + ".kind", Cat("\"", ref.kind(), "\" is not supported; only Service"));
    if (ref.name().empty()) c.Fail(f + ".name", "required");
    if (ref.namespace_().empty()) c.Fail(f + ".namespace", "required");
  }
}

}  // namespace

absl::Status Validate(const Document& doc, const ValidationContext& ctx) {
  Checker c(doc);
  if (doc.kind->plugin_policy && !ctx.plugins_enabled) {
    c.Fail("kind", Cat("plugin policy is disabled, so ", doc.kind->name,
                                " resources are refused; enable it with "
                                "spec.featureFlags.enablePluginPolicy: true in the MeshConfig"));
    return c.status();
  }
  CheckMetadata(doc, c);
  const auto& obj = *doc.object;
  switch (doc.kind->id) {
    case Kind::kNamespace:
      if (auto it = Meta(obj).annotations().find(resources::kMtlsModeAnnotation); it != Meta(obj).annotations().end()) {
        CheckMtlsMode(Cat("metadata.annotations.", resources::kMtlsModeAnnotation), it->second, c);
      }
      if (auto it = Meta(obj).annotations().find(resources::kEgressHostsAnnotation); it != Meta(obj).annotations().end()) {
        CheckEgressHosts(Cat("metadata.annotations.", resources::kEgressHostsAnnotation),
                         resources::SplitEgressHosts(it->second), c);
      }
      break;
    case Kind::kService:
      CheckService(static_cast<const mv1::Service&>(obj), c);
      break;
    case Kind::kWorkload:
      CheckWorkload(static_cast<const mv1::Workload&>(obj), c);
      break;
    case Kind::kMeshConfig:
      CheckMeshConfig(static_cast<const mv1::MeshConfig&>(obj), c);
      break;
    case Kind::kPlugin:
      CheckPlugin(static_cast<const mv1::Plugin&>(obj), c);
      break;
    case Kind::kPluginChain:
      CheckPluginChain(static_cast<const mv1::PluginChain&>(obj), c);
      break;
    case Kind::kPluginConfig:
      CheckPluginConfig(static_cast<const mv1::PluginConfig&>(obj), c);
      break;
    case Kind::kHTTPRoute:
      CheckHTTPRoute(static_cast<const mv1::HTTPRoute&>(obj), c);
      break;
  }
  return c.status();
}

}  // namespace meshplug::control_plane::validation
