#include "control_plane/translate/translate.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <bit>
#include <tuple>

#include "common/chain_info.h"
#include "common/hash.h"
#include "common/strings.h"
#include "common/x509.h"
#include "control_plane/translate/selector.h"
#include "re2/re2.h"

namespace meshplug::control_plane::translate {
namespace {

google::protobuf::Duration ToProto(absl::Duration d) {
  return google::protobuf::util::TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(d));
}

// Views into the chain's defaults and the state, which outlive the translation: an agent's
// chains are made for every agent, so they copy no names.
struct Module {
  std::string_view name;
  uint32_t priority;
  bool script;  // a Lua plugin (its PluginScript resource is named after it), not a built-in
};

// Built-ins of `chain`: the defaults, with MeshConfig's entries overriding the priority
// and `disable` of a module of the same name (the last entry of a name wins), or adding
// modules. In no particular order: Translate sorts them.
std::vector<Module> BuiltinModules(const MeshState& state, const ChainInfo& chain) {
  std::vector<Module> modules;
  modules.reserve(chain.builtins.size());
  for (const BuiltinDefault& d : chain.builtins) modules.push_back(Module{d.module, d.priority, false});
  if (!state.mesh_config) return modules;
  for (const auto& m : ModulesOf(state.mesh_config->spec().plugin_chains(), chain)) {
    auto it = std::find_if(modules.begin(), modules.end(), [&](const Module& e) { return e.name == m.plugin(); });
    if (m.disable()) {
      if (it != modules.end()) modules.erase(it);
    } else if (it != modules.end()) {
      it->priority = static_cast<uint32_t>(m.priority());
    } else {
      modules.push_back(Module{m.plugin(), static_cast<uint32_t>(m.priority()), false});
    }
  }
  return modules;
}

std::string ServiceName(const ObjectKey& key) { return Cat(key.second, ".", key.first); }

std::vector<std::string> Hosts(const ObjectKey& key, const mesh::v1::ServiceSpec& spec) {
  const std::string& name = key.second;
  const std::string& ns = key.first;
  // Qualified forms only: destinations are shared by every agent, and a bare name means the
  // service of the caller's own namespace, which the agent resolves (MeshView::FindService).
  std::vector<std::string> forms = {Cat(name, ".", ns), Cat(name, ".", ns, ".svc"), Cat(name, ".", ns, ".svc.cluster.local")};
  // Its address too: a request through interception may name the service by it.
  if (!spec.cluster_ip().empty()) forms.push_back(spec.cluster_ip());
  std::vector<std::string> hosts;
  for (const auto& f : forms) {
    hosts.push_back(f);
    for (const auto& p : spec.ports()) hosts.push_back(Cat(f, ":", p.port()));
  }
  return hosts;
}

v1::Protocol ProtocolOf(const mesh::v1::ServicePort& p) {
  if (p.protocol() == "tcp") return v1::PROTOCOL_TCP;
  if (p.protocol() == "http2") return v1::PROTOCOL_HTTP2;
  if (p.protocol() == "grpc") return v1::PROTOCOL_GRPC;
  return v1::PROTOCOL_HTTP;
}

// The Service resource, its clusters and their endpoints for one direction.
std::string TrustDomain(const MeshState& state) {
  const std::string& td = state.mesh_config ? state.mesh_config->spec().certificate().trust_domain() : "";
  return td.empty() ? x509::kDefaultTrustDomain : td;
}

// The namespace's annotation, else MeshConfig's traffic.mtlsMode ("" is permissive).
std::string MtlsModeOf(const MeshState& state, const std::string& ns) {
  if (auto it = state.namespaces.find(ns); it != state.namespaces.end()) {
    const auto& annotations = it->second.metadata().annotations();
    if (auto a = annotations.find(resources::kMtlsModeAnnotation); a != annotations.end()) return a->second;
  }
  return state.mesh_config ? state.mesh_config->spec().traffic().mtls_mode() : "";
}

// Gateway API's PathPrefix matches whole path elements ("/a" matches "/a" and "/a/b", not
// "/ab"); a prefix ending in "/" is the same as a string prefix.
void SetPathMatch(const mesh::v1::HTTPPathMatch& path, v1::RouteMatch& m) {
  const std::string value = path.value().empty() ? "/" : path.value();
  if (path.type() == "Exact") {
    m.set_exact(value);
  } else if (path.type() == "RegularExpression") {
    m.set_regex(value);
  } else if (value.back() == '/') {
    m.set_prefix(value);
  } else {
    m.set_regex(Cat(re2::RE2::QuoteMeta(value), "(/.*)?"));
  }
}

// The rules of the HTTPRoutes whose parent is `service` (all its ports, or `port`) as its
// routes for calls on `port`, in the HTTPRoutes' name order.
void AddRoutes(const MeshState& state, const ObjectKey& service, uint32_t port, v1::Service& out) {
  const std::string& ns = service.first;
  for (auto it = state.http_routes.lower_bound({ns, ""}); it != state.http_routes.end() && it->first.first == ns; ++it) {
    const auto& [key, route] = *it;
    const auto& parents = route.spec().parent_refs();
    if (std::none_of(parents.begin(), parents.end(), [&](const mesh::v1::ParentReference& p) {
          return p.name() == service.second && (p.port() == 0 || static_cast<uint32_t>(p.port()) == port);
        })) {
      continue;
    }
    for (int i = 0; i < route.spec().rules_size(); ++i) {
      const auto& rule = route.spec().rules(i);
      v1::HttpRoute action;
      for (const auto& b : rule.backend_refs()) {
        // A backend that names no port of a Service is left out (its share goes to the
        // others): agents refuse a route to a cluster that does not exist.
        auto backend = state.services.find({ns, b.name()});
        if (backend == state.services.end() ||
            std::none_of(backend->second.spec().ports().begin(), backend->second.spec().ports().end(),
                         [&](const mesh::v1::ServicePort& p) { return p.port() == b.port(); })) {
          continue;
        }
        auto* wc = action.add_clusters();
        wc->set_cluster(ClusterName(Cat(b.name(), ".", ns), b.port(), false));
        wc->set_weight(b.has_weight() ? b.weight() : 1);
      }
      if (absl::Duration timeout; absl::ParseDuration(rule.timeouts().request(), &timeout) && timeout > absl::ZeroDuration()) {
        *action.mutable_timeout() = ToProto(timeout);
      }
      if (rule.fault().has_delay()) {
        v1::FaultInjection& fault = *action.mutable_fault();
        absl::Duration delay;
        absl::ParseDuration(rule.fault().delay().fixed_delay(), &delay);  // validated
        *fault.mutable_delay() = ToProto(delay);
        fault.set_delay_percent(rule.fault().delay().percent());
      }
      if (rule.fault().has_abort()) {
        action.mutable_fault()->set_abort_status(rule.fault().abort().http_status());
        action.mutable_fault()->set_abort_percent(rule.fault().abort().percent());
      }
      if (rule.has_retry()) {
        v1::RetryPolicy& retry = *action.mutable_retry();
        retry.set_num_retries(rule.retry().attempts());
        for (int32_t code : rule.retry().codes()) retry.add_retry_on_status(code);
        if (absl::Duration backoff; absl::ParseDuration(rule.retry().backoff(), &backoff)) {
          *retry.mutable_backoff_base() = ToProto(backoff);
        }
      }
      // No backend left that a call could go to: the rule is left out (calls fall through
      // to the next route), for agents and xDS clients alike.
      if (std::none_of(action.clusters().begin(), action.clusters().end(),
                       [](const v1::WeightedCluster& wc) { return wc.weight() > 0; })) {
        continue;
      }
      // A rule without matches matches every call.
      for (int m = 0; m < std::max(rule.matches_size(), 1); ++m) {
        v1::HttpRoute* r = out.add_routes();
        *r = action;
        // Unique within the Service: a route without a port in its parentRef applies to each.
        r->set_name(rule.matches_size() > 1 ? Cat(key.second, "/", i, "/", m, ":", port) : Cat(key.second, "/", i, ":", port));
        v1::RouteMatch& match = *r->mutable_match();
        match.set_port(port);
        const mesh::v1::HTTPRouteMatch& in = m < rule.matches_size() ? rule.matches(m) : mesh::v1::HTTPRouteMatch();
        SetPathMatch(in.path(), match);
        for (const auto& h : in.headers()) {
          auto* hm = match.add_headers();
          hm->set_name(h.name());
          if (h.type() == "RegularExpression") {
            hm->set_regex(h.value());
          } else {
            hm->set_exact(h.value());
          }
        }
        if (!in.method().empty()) match.add_methods(in.method());
      }
    }
  }
}

// How many pages a cluster of `endpoints` is split into: the smallest power of two with
// at most kEndpointsPerPage endpoints a page on average, so an endpoint's page is its
// workload's hash masked. Crossing a power of two (64 → 65, 128 → 129 endpoints, and
// back) changes the count, moves about half the endpoints and rewrites every page: the
// price of pages that every control-plane replica computes alike from the mesh alone.
constexpr size_t kEndpointsPerPage = 64;
size_t EndpointPages(size_t endpoints) {
  return std::bit_ceil(std::max<size_t>(1, (endpoints + kEndpointsPerPage - 1) / kEndpointsPerPage));
}

// Only the Endpoints it adds depend on the Service's workloads; its routes depend on its
// HTTPRoutes and their backend Services (Translate's comment says who counts on it).
void AddService(const MeshState& state, const ObjectKey& key, const mesh::v1::Service& svc, bool inbound,
                v1::Snapshot& snap) {
  auto* out = snap.add_services();
  out->set_name(ServiceName(key));
  out->set_revision(svc.metadata().resource_version());
  out->set_inbound(inbound);
  out->set_virtual_ip(svc.spec().cluster_ip());
  for (const auto& h : Hosts(key, svc.spec())) out->add_hosts(h);
  for (const auto& p : svc.spec().ports()) {
    const uint32_t port = p.port();
    const uint32_t target = p.target_port() ? p.target_port() : port;
    auto* sp = out->add_ports();
    sp->set_name(p.name());
    sp->set_port(port);
    sp->set_target_port(target);
    sp->set_protocol(ProtocolOf(p));
    const std::string cluster = ClusterName(out->name(), port, inbound);
    if (ProtocolOf(p) != v1::PROTOCOL_TCP) {
      if (!inbound) AddRoutes(state, key, port, *out);
      auto* route = out->add_routes();
      route->set_name(Cat("port-", port));
      route->mutable_match()->set_prefix("/");
      route->mutable_match()->set_port(port);
      auto* wc = route->add_clusters();
      wc->set_cluster(cluster);
      wc->set_weight(100);
    } else {
      auto* wc = sp->add_tcp_clusters();
      wc->set_cluster(cluster);
      wc->set_weight(100);
    }
    v1::Cluster* c = snap.add_clusters();
    c->set_name(cluster);
    c->set_protocol(ProtocolOf(p));
    auto* eps = snap.add_endpoints();
    eps->set_cluster(cluster);
    if (inbound) {
      auto* ep = eps->add_endpoints();
      ep->set_address("127.0.0.1");
      ep->set_port(target);
      continue;
    }
    const std::vector<const mesh::v1::Workload*>& members = state.Members(key);
    std::vector<v1::Endpoints*> pages(EndpointPages(members.size()));
    pages[0] = eps;
    for (const mesh::v1::Workload* wl : members) {
      std::string workload = Cat(wl->metadata().name(), ".", wl->metadata().namespace_());
      const size_t k = StableHash(workload) & (pages.size() - 1);
      v1::Endpoints*& page = pages[k];
      if (page == nullptr) {
        page = snap.add_endpoints();
        page->set_cluster(cluster);
        page->set_page(k);
      }
      auto* ep = page->add_endpoints();
      ep->set_address(wl->spec().address());
      ep->set_port(wl->spec().inbound_port());
      ep->set_weight(1);
      ep->set_workload(std::move(workload));
      // An agent registered it, so an agent with this identity is in front of it (mTLS).
      if (wl->metadata().annotations().count(resources::kRegisteredBy)) {
        ep->set_identity(x509::SpiffeId(TrustDomain(state), wl->metadata().namespace_(),
                                        wl->spec().service_account().empty() ? "default" : wl->spec().service_account()));
      }
    }
  }
}

// Attaches PluginConfigs of mounted plugins to the agent's services (docs/spec.md §3.4): a plugin
// on an outbound chain gets its config under the destination service (a copy of the
// shared one, for this agent), one on an inbound chain under the agent's own service.
// `mounted[d]`: plugins on the inbound (d = 1) or outbound (d = 0) chains.
void AttachConfigs(const MeshState& state, const v1::Snapshot& destinations, const std::set<std::string> (&mounted)[2],
                   v1::Snapshot& snap, Report& report) {
  // (plugin, service) → the winning config; older (lower create revision) wins.
  std::map<std::pair<std::string, std::string>, const std::pair<const ObjectKey, Versioned<mesh::v1::PluginConfig>>*> winners;
  for (const auto& entry : state.plugin_configs) {
    const auto& pc = entry.second.object;
    if (!report.mounted_plugins.count(pc.spec().plugin())) continue;
    for (const auto& ref : pc.spec().destination_refs()) {
      const auto slot = std::make_pair(pc.spec().plugin(), Cat(ref.name(), ".", ref.namespace_()));
      auto [it, fresh] = winners.emplace(slot, &entry);
      if (fresh) continue;
      const auto* a = it->second;
      const auto* b = &entry;
      if (std::tie(b->second.create_revision, b->first) < std::tie(a->second.create_revision, a->first)) std::swap(a, b);
      it->second = a;
      const std::string msg = Cat("PluginConfigs ", a->first.first, "/", a->first.second, " and ", b->first.first,
                                  "/", b->first.second, " both configure plugin ", slot.first, " for service ",
                                  slot.second, "; the older, ", a->first.first, "/", a->first.second, ", wins");
      report.conflicts[a->first].insert(msg);
      report.conflicts[b->first].insert(msg);
    }
  }
  auto service = [&](const std::string& name, bool inbound) -> v1::Service* {
    for (auto& s : *snap.mutable_services()) {
      if (s.name() == name && s.inbound() == inbound) return &s;
    }
    if (inbound) return nullptr;  // not one of the agent's own services
    for (const auto& d : destinations.services()) {
      if (d.name() != name) continue;
      report.copied_services.insert(name);
      return &(*snap.add_services() = d);
    }
    return nullptr;
  };
  for (const auto& [slot, entry] : winners) {
    for (const bool inbound : {false, true}) {
      if (!mounted[inbound].count(slot.first)) continue;
      v1::Service* svc = service(slot.second, inbound);
      if (!svc) continue;
      (*svc->mutable_plugin_configs())[slot.first] = entry->second.object.spec().config();
      report.applied_configs.insert(entry->first);
    }
  }
}

}  // namespace

std::string ClusterName(const std::string& service, uint32_t port, bool local) {
  return Cat(service, "|", port, local ? "|local" : "");
}

bool ChainSelects(const MeshState& state, const mesh::v1::PluginChain& chain, const mesh::v1::Workload& workload) {
  static const mesh::v1::Namespace kNoNamespace;
  auto ns = state.namespaces.find(workload.metadata().namespace_());
  const auto& sel = chain.spec().selectors();
  return Matches(sel.pod_selector(), workload.metadata().labels()) &&
         Matches(sel.namespace_selector(),
                 (ns == state.namespaces.end() ? kNoNamespace : ns->second).metadata().labels());
}

std::optional<std::vector<resources::EgressHost>> EgressScope(const MeshState& state, const std::string& ns) {
  absl::StatusOr<std::vector<resources::EgressHost>> parsed = absl::NotFoundError("");
  if (auto it = state.namespaces.find(ns); it != state.namespaces.end()) {
    const auto& annotations = it->second.metadata().annotations();
    if (auto a = annotations.find(resources::kEgressHostsAnnotation); a != annotations.end()) {
      parsed = resources::ParseEgressHosts(resources::SplitEgressHosts(a->second));
    }
  }
  // Validation refuses bad values; one stored before a rule changed falls back the same way.
  if (!parsed.ok() && state.mesh_config && !state.mesh_config->spec().traffic().egress_hosts().empty()) {
    const auto& hosts = state.mesh_config->spec().traffic().egress_hosts();
    parsed = resources::ParseEgressHosts({hosts.begin(), hosts.end()});
  }
  if (!parsed.ok()) return std::nullopt;
  for (auto& h : *parsed) {
    if (h.ns == ".") h.ns = ns;
  }
  auto key = [](const resources::EgressHost& h) { return std::tie(h.ns, h.name); };
  std::sort(parsed->begin(), parsed->end(), [&](const auto& a, const auto& b) { return key(a) < key(b); });
  parsed->erase(std::unique(parsed->begin(), parsed->end(), [&](const auto& a, const auto& b) { return key(a) == key(b); }),
                parsed->end());
  return *std::move(parsed);
}

v1::Snapshot ScopeDestinations(const v1::Snapshot& destinations, const std::vector<resources::EgressHost>& scope) {
  v1::Snapshot out;
  for (const v1::Service& s : destinations.services()) {
    const size_t dot = s.name().find('.');  // names and namespaces are DNS labels: no dots
    if (!resources::EgressAllows(scope, "", s.name().substr(dot + 1), s.name().substr(0, dot))) continue;
    *out.add_services() = s;
  }
  // The clusters their routes lead to: their own, and an HTTPRoute's backends (Services of
  // their own, which the scope may not name).
  std::set<std::string> wanted;
  for (const v1::Service& s : out.services()) {
    for (const auto& r : s.routes()) {
      for (const auto& wc : r.clusters()) wanted.insert(wc.cluster());
    }
    for (const auto& p : s.ports()) {
      for (const auto& wc : p.tcp_clusters()) wanted.insert(wc.cluster());
    }
  }
  for (const v1::Cluster& c : destinations.clusters()) {
    if (wanted.count(c.name())) *out.add_clusters() = c;
  }
  for (const v1::Endpoints& e : destinations.endpoints()) {
    if (wanted.count(e.cluster())) *out.add_endpoints() = e;
  }
  return out;
}

v1::Snapshot TranslateDestinations(const MeshState& state) {
  v1::Snapshot snap;
  for (const auto& [key, svc] : state.services) AddService(state, key, svc, /*inbound=*/false, snap);
  return snap;
}

bool OnlyScriptDiffers(const mesh::v1::Plugin& before, const mesh::v1::Plugin& after) {
  return before.spec().priority() == after.spec().priority();
}

v1::PluginScript ScriptOf(const mesh::v1::Plugin& plugin) {
  v1::PluginScript s;
  s.set_name(plugin.metadata().name());
  s.set_plugin(plugin.metadata().name());
  s.set_source(plugin.spec().script());
  s.set_version(std::to_string(plugin.metadata().resource_version()));
  return s;
}

Translation Translate(const MeshState& state, const v1::Snapshot& destinations, const mesh::v1::Workload& agent) {
  Translation t;
  v1::Snapshot& snap = t.snapshot;
  const std::string& ns = agent.metadata().namespace_();

  std::map<const ChainInfo*, std::vector<Module>> chains;
  for (const ChainInfo& c : Chains()) chains[&c] = BuiltinModules(state, c);

  if (state.plugins_enabled()) {
    for (const auto& [key, pc] : state.plugin_chains) {
      if (!ChainSelects(state, pc, agent)) continue;
      t.report.matched_chains.push_back(key);
      for (const auto& ref : pc.spec().chains()) {
        auto& modules = chains[FindChain(ref.name())];  // validated at apply
        for (const auto& plugin : ref.plugins()) {
          auto it = state.plugins.find(plugin);
          if (it == state.plugins.end()) {
            t.report.missing_plugins[key].insert(plugin);
            continue;
          }
          const bool already = std::any_of(modules.begin(), modules.end(),
                                           [&](const Module& m) { return m.name == plugin; });
          if (already) continue;
          modules.push_back(Module{plugin, static_cast<uint32_t>(it->second.object.spec().priority()), true});
          if (t.report.mounted_plugins.insert(plugin).second) *snap.add_scripts() = ScriptOf(it->second.object);
        }
      }
    }
  }

  auto* set = snap.mutable_chains();
  set->set_name("chains");
  for (auto& [chain, modules] : chains) {
    std::sort(modules.begin(), modules.end(), [](const Module& a, const Module& b) {
      return a.priority != b.priority ? a.priority > b.priority : a.name < b.name;
    });
    auto* out = MutableModulesOf(*set, *chain);
    for (const auto& m : modules) {
      auto* cm = out->Add();
      cm->set_name(std::string(m.name));
      cm->set_priority(m.priority);
      if (!m.script) {
        cm->set_builtin(true);
      } else {
        cm->set_script(std::string(m.name));
      }
    }
  }

  for (const auto* service : state.ServicesSelecting(agent)) {
    AddService(state, service->first, service->second, /*inbound=*/true, snap);
  }
  std::set<std::string> mounted[2];
  for (const auto& [chain, modules] : chains) {
    for (const auto& m : modules) {
      if (m.script) mounted[chain->inbound].emplace(m.name);
    }
  }
  AttachConfigs(state, destinations, mounted, snap, t.report);

  *snap.mutable_settings()->mutable_trust() = state.trust;
  snap.mutable_settings()->set_mtls_mode(MtlsModeOf(state, ns) == "strict" ? v1::MTLS_STRICT : v1::MTLS_PERMISSIVE);
  snap.mutable_settings()->set_access_log(state.mesh_config &&
                                         state.mesh_config->spec().observability().access_log());
  snap.mutable_settings()->set_forward_client_cert(state.mesh_config &&
                                                  state.mesh_config->spec().traffic().forward_client_cert());
  snap.mutable_settings()->set_egress_refused(state.mesh_config &&
                                             state.mesh_config->spec().traffic().egress_policy() == "refuse");
  auto* wl = snap.mutable_settings()->mutable_workload();
  wl->set_name(agent.metadata().name());
  wl->set_namespace_(ns);
  wl->set_service_account(agent.spec().service_account());
  wl->mutable_labels()->insert(agent.metadata().labels().begin(), agent.metadata().labels().end());

  return t;
}

}  // namespace meshplug::control_plane::translate
