#include "common/route_rules.h"
#include "agent/routing/mesh_view.h"

#include <re2/re2.h>

#include <algorithm>
#include <random>
#include <set>

#include "common/random.h"
#include "common/strings.h"
#include "agent/routing/uri.h"
#include "absl/time/time.h"
#include "plugins/api/http_fields.h"

namespace meshplug::agent::routing {
namespace {

// The port a Host header names; 80 when it names none.
uint32_t HostPort(std::string_view host) {
  size_t colon = host.rfind(':');
  uint32_t port = 0;
  if (colon == std::string_view::npos || host.find(']', colon) != std::string_view::npos ||
      !ParseNumber(host.substr(colon + 1), port)) {
    return 80;
  }
  return port;
}

std::string_view PathOf(std::string_view target) {
  return target.substr(0, target.find('?'));
}

bool FullMatch(std::string_view text, const re2::RE2& regex) {
  return re2::RE2::FullMatch(re2::StringPiece(text.data(), text.size()), regex);
}

bool MatchHeader(const v1::HeaderMatch& m, const std::shared_ptr<const re2::RE2>& regex,
                 const plugins::http::request_header<>& request) {
  auto it = request.find(m.name());
  bool present = it != request.end();
  switch (m.value_case()) {
    case v1::HeaderMatch::kPresent:
      return present == m.present();
    case v1::HeaderMatch::kExact:
      return present && it->value() == m.exact();
    case v1::HeaderMatch::kPrefix:
      return present && it->value().starts_with(m.prefix());
    case v1::HeaderMatch::kRegex:
      return present && FullMatch(it->value(), *regex);
    case v1::HeaderMatch::VALUE_NOT_SET:
      return present;
  }
  return false;
}

bool MatchRoute(const RouteView& route, const plugins::http::request_header<>& request,
                std::string_view path, uint32_t port) {
  const v1::RouteMatch& m = route.config->match();
  switch (m.path_case()) {
    case v1::RouteMatch::kExact:
      if (path != m.exact()) return false;
      break;
    case v1::RouteMatch::kPrefix:
      if (!path.starts_with(m.prefix())) return false;
      break;
    case v1::RouteMatch::kRegex:
      if (!FullMatch(path, *route.path_regex)) return false;
      break;
    case v1::RouteMatch::PATH_NOT_SET:
      break;
  }
  if (m.port() != 0 && m.port() != port) return false;
  if (!m.methods().empty() &&
      std::find(m.methods().begin(), m.methods().end(), request.method_string()) ==
          m.methods().end()) {
    return false;
  }
  for (int i = 0; i < m.headers_size(); ++i) {
    if (!MatchHeader(m.headers(i), route.header_regexes[i], request)) return false;
  }
  return true;
}

// RE2 (linear time, bounded memory) instead of std::regex, whose backtracking matcher
// recurses per character and is exponential on patterns like "(a|a)*b": a request must
// not be able to stall or crash a worker. Patterns are RE2 syntax (no backreferences or
// lookaround), as in Envoy's safe_regex.
absl::StatusOr<std::shared_ptr<const re2::RE2>> Compile(const std::string& pattern,
                                                        std::string_view where) {
  auto re = std::make_shared<const re2::RE2>(pattern, RouteRegexOptions());
  if (!re->ok()) {
    return absl::InvalidArgumentError(
        Cat(where, ": bad regex \"", pattern, "\": ", re->error()));
  }
  return re;
}

absl::Status CheckRetry(const v1::RetryPolicy& retry, std::string_view where) {
  if (retry.num_retries() <= kMaxRetries) return absl::OkStatus();
  return absl::InvalidArgumentError(Cat(where, ": ", retry.num_retries(), " retries, at most ", kMaxRetries));
}

absl::Status CheckFault(const v1::FaultInjection& f, std::string_view where) {
  const bool status_ok = f.abort_status() == 0 || (f.abort_status() >= kMinFaultStatus && f.abort_status() <= kMaxFaultStatus);
  const bool delay_ok = f.delay().seconds() >= 0 &&
                        f.delay().seconds() <= std::chrono::duration_cast<std::chrono::seconds>(kMaxFaultDelay).count();
  if (f.delay_percent() <= 100 && f.abort_percent() <= 100 && status_ok && delay_ok) return absl::OkStatus();
  return absl::InvalidArgumentError(Cat(where, ": fault percentages are 0-100, its status ", kMinFaultStatus, "-",
                                        kMaxFaultStatus, " and its delay at most ",
                                        absl::FormatDuration(absl::FromChrono(kMaxFaultDelay))));
}

absl::Status CheckPort(uint32_t port, std::string_view where) {
  if (port > kMaxPort) {
    return absl::InvalidArgumentError(Cat(where, ": port ", port, " is above ", kMaxPort));
  }
  return absl::OkStatus();
}

}  // namespace

MeshView::MeshView(std::shared_ptr<const v1::Snapshot> snapshot)
    : snapshot_(std::move(snapshot)) {}

absl::StatusOr<std::shared_ptr<const MeshView>> MeshView::Build(
    std::shared_ptr<const v1::Snapshot> snapshot) {
  std::shared_ptr<MeshView> view(new MeshView(std::move(snapshot)));
  if (absl::Status s = view->Index(); !s.ok()) return s;
  return std::shared_ptr<const MeshView>(std::move(view));
}

absl::Status MeshView::Index() {
  std::map<std::string_view, std::vector<v1::Endpoint>> endpoints;
  for (const v1::Endpoints& e : snapshot_->endpoints()) {
    for (const v1::Endpoint& endpoint : e.endpoints()) {
      if (endpoint.port() == 0 || endpoint.port() > kMaxPort) {
        return absl::InvalidArgumentError(Cat("cluster ", e.cluster(), " endpoint ",
                                              endpoint.address(), ": port ", endpoint.port(),
                                              " is outside 1-", kMaxPort));
      }
    }
    auto& list = endpoints[e.cluster()];
    list.insert(list.end(), e.endpoints().begin(), e.endpoints().end());
  }
  for (const v1::Cluster& c : snapshot_->clusters()) {
    if (c.name().empty()) return absl::InvalidArgumentError("cluster without a name");
    if (absl::Status st = CheckRetry(c.retry(), Cat("cluster ", c.name())); !st.ok()) return st;
    auto eps = endpoints.find(c.name());
    ClusterView view{c, std::make_unique<LoadBalancer>(
                            c.lb_policy(), eps == endpoints.end() ? std::vector<v1::Endpoint>{}
                                                                  : std::move(eps->second))};
    if (!clusters_.emplace(c.name(), std::move(view)).second) {
      return absl::InvalidArgumentError(Cat("cluster \"", c.name(), "\" is duplicated"));
    }
  }
  auto check_clusters = [&](const auto& weighted, std::string_view where) -> absl::Status {
    for (const v1::WeightedCluster& wc : weighted) {
      if (!clusters_.contains(wc.cluster())) {
        return absl::InvalidArgumentError(
            Cat(where, ": unknown cluster \"", wc.cluster(), "\""));
      }
    }
    return absl::OkStatus();
  };
  for (const v1::Service& s : snapshot_->services()) {
    ServiceView view{&s, {}};
    std::set<std::string_view> route_names;
    for (const v1::HttpRoute& r : s.routes()) {
      std::string where = Cat("service ", s.name(), " route ", r.name());
      // Per-route settings (timeouts, rate limits) are found by name.
      if (!route_names.insert(r.name()).second) {
        return absl::InvalidArgumentError(Cat(where, ": route name is duplicated"));
      }
      if (absl::Status st = CheckPort(r.match().port(), where); !st.ok()) return st;
      if (absl::Status st = CheckRetry(r.retry(), where); !st.ok()) return st;
      if (absl::Status st = CheckFault(r.fault(), where); !st.ok()) return st;
      RouteView route{&r, nullptr, {}};
      if (r.match().path_case() == v1::RouteMatch::kRegex) {
        auto re = Compile(r.match().regex(), where);
        if (!re.ok()) return re.status();
        route.path_regex = std::move(*re);
      }
      for (const v1::HeaderMatch& h : r.match().headers()) {
        std::shared_ptr<const re2::RE2> re;
        if (h.value_case() == v1::HeaderMatch::kRegex) {
          auto compiled = Compile(h.regex(), Cat(where, " header ", h.name()));
          if (!compiled.ok()) return compiled.status();
          re = std::move(*compiled);
        }
        route.header_regexes.push_back(std::move(re));
      }
      if (absl::Status st = check_clusters(r.clusters(), where); !st.ok()) return st;
      view.routes.push_back(std::move(route));
    }
    for (const v1::ServicePort& p : s.ports()) {
      std::string where = Cat("service ", s.name(), " port ", p.port());
      for (uint32_t port : {p.port(), p.target_port(), p.tcp_listen_port()}) {
        if (absl::Status st = CheckPort(port, where); !st.ok()) return st;
      }
      if (absl::Status st = check_clusters(p.tcp_clusters(), where); !st.ok()) return st;
    }
    auto [it, added] = services_[s.inbound()].emplace(s.name(), std::move(view));
    if (!added) {
      return absl::InvalidArgumentError(
          Cat(s.inbound() ? "inbound" : "outbound", " service \"", s.name(), "\" is duplicated"));
    }
    boost::system::error_code not_v4;
    const auto virtual_ip = boost::asio::ip::make_address_v4(s.virtual_ip(), not_v4);
    if (!s.virtual_ip().empty() && not_v4) {
      return absl::InvalidArgumentError(Cat("service \"", s.name(), "\": virtual_ip \"", s.virtual_ip(),
                                            "\" is not an IPv4 address"));
    }
    for (const v1::ServicePort& p : s.ports()) {
      if (!s.inbound() && !s.virtual_ip().empty()) {
        virtual_ports_.emplace(std::make_pair(virtual_ip.to_uint(), p.port()), TcpPortView{&it->second, &p});
      }
      if (s.inbound()) app_ports_.emplace(p.target_port() ? p.target_port() : p.port(), TcpPortView{&it->second, &p});
      if (p.protocol() != v1::PROTOCOL_TCP || p.tcp_listen_port() == 0) continue;
      if (!tcp_ports_[s.inbound()].emplace(p.tcp_listen_port(), TcpPortView{&it->second, &p})
               .second) {
        return absl::InvalidArgumentError(Cat(
            "service ", s.name(), ": tcp_listen_port ", p.tcp_listen_port(), " is taken"));
      }
    }
    for (const std::string& host : s.hosts()) {
      std::string normalized;
      auto [h, fresh] = hosts_[s.inbound()].emplace(NormalizeHost(host, normalized), &it->second);
      if (!fresh) {
        return absl::InvalidArgumentError(Cat("host \"", host, "\" selects both ",
                                                       h->second->config->name(), " and ",
                                                       s.name()));
      }
    }
  }
  return absl::OkStatus();
}

const ServiceView* MeshView::FindService(std::string_view host, bool inbound) const {
  if (const ServiceView* named = FindNamedService(host, inbound)) return named;
  auto it = hosts_[inbound].find("*");
  return it == hosts_[inbound].end() ? nullptr : it->second;
}

const ServiceView* MeshView::FindNamedService(std::string_view host, bool inbound) const {
  const auto& hosts = hosts_[inbound];
  std::string storage;
  const std::string_view normalized = NormalizeHost(host, storage);
  auto it = hosts.find(normalized);
  if (it == hosts.end()) {
    // A bare service name is one of this workload's namespace (a DNS search domain).
    const size_t colon = normalized.rfind(':');
    const std::string_view name = normalized.substr(0, colon);
    const std::string& ns = snapshot_->settings().workload().namespace_();
    if (!ns.empty() && !name.empty() && name.find_first_of(".[") == std::string_view::npos) {
      std::string qualified = Cat(name, ".", ns);
      if (colon != std::string::npos) qualified += normalized.substr(colon);
      it = hosts.find(qualified);
    }
  }
  return it == hosts.end() ? nullptr : it->second;
}

RouteChoice MeshView::Route(const plugins::http::request_header<>& request, bool inbound) const {
  std::string_view host = plugins::FieldValue(request, plugins::http::field::host);
  const ServiceView* service = FindService(host, inbound);
  if (service == nullptr) return {};
  // The agent normalizes targets before the chain runs; a plugin may have set another.
  std::string storage;
  const std::optional<std::string_view> target = NormalizeOriginForm(request.target(), storage);
  if (!target) return {service, nullptr};
  std::string_view path = PathOf(*target);
  uint32_t port = HostPort(host);
  for (const RouteView& route : service->routes) {
    if (MatchRoute(route, request, path, port)) return {service, &route};
  }
  return {service, nullptr};
}

const ServiceView* MeshView::FindServiceByName(std::string_view name, bool inbound) const {
  auto it = services_[inbound].find(name);
  return it == services_[inbound].end() ? nullptr : &it->second;
}

const v1::HttpRoute* MeshView::FindRoute(std::string_view service, std::string_view route, bool inbound) const {
  const ServiceView* s = FindServiceByName(service, inbound);
  if (s == nullptr) return nullptr;
  for (const RouteView& r : s->routes) {
    if (r.config->name() == route) return r.config;
  }
  return nullptr;
}

std::optional<plugins::UpstreamTarget> MeshView::Resolve(std::string_view host_port) const {
  const ServiceView* service = FindService(host_port, /*inbound=*/false);
  if (service == nullptr) return std::nullopt;
  const uint32_t port = HostPort(host_port);
  for (const RouteView& route : service->routes) {
    const uint32_t route_port = route.config->match().port();
    if (route_port != 0 && route_port != port) continue;
    for (const v1::WeightedCluster& wc : route.config->clusters()) {
      if (wc.weight() == 0) continue;
      const ClusterView* cluster = FindCluster(wc.cluster());
      if (cluster == nullptr || cluster->lb->size() == 0) continue;
      const v1::Endpoint& ep = cluster->lb->endpoint(RandomU64() % cluster->lb->size());
      return plugins::UpstreamTarget{wc.cluster(), ep.address(), static_cast<uint16_t>(ep.port()), ep.identity(),
                                     ep.workload()};
    }
  }
  return std::nullopt;
}

std::optional<TcpPortView> MeshView::FindTcpPort(uint32_t listen_port, bool inbound) const {
  auto it = tcp_ports_[inbound].find(listen_port);
  if (it == tcp_ports_[inbound].end()) return std::nullopt;
  return it->second;
}

std::optional<TcpPortView> MeshView::FindServicePort(std::string_view service, uint32_t port, bool inbound) const {
  const ServiceView* view = FindServiceByName(service, inbound);
  if (view == nullptr) return std::nullopt;
  for (const v1::ServicePort& p : view->config->ports()) {
    if (p.port() == port) return TcpPortView{view, &p};
  }
  return std::nullopt;
}

std::optional<TcpPortView> MeshView::FindVirtualPort(const boost::asio::ip::address& ip, uint32_t port) const {
  // Virtual addresses are IPv4 (original destinations come unmapped: net/original_dst).
  if (!ip.is_v4()) return std::nullopt;
  auto it = virtual_ports_.find(std::make_pair(ip.to_v4().to_uint(), port));
  if (it == virtual_ports_.end()) return std::nullopt;
  return it->second;
}

std::optional<TcpPortView> MeshView::FindAppPort(uint32_t target_port) const {
  auto it = app_ports_.find(target_port);
  if (it == app_ports_.end()) return std::nullopt;
  return it->second;
}

std::optional<TcpPortView> MeshView::FindOriginalPort(const boost::asio::ip::tcp::endpoint& original,
                                                      bool inbound) const {
  return inbound ? FindAppPort(original.port()) : FindVirtualPort(original.address(), original.port());
}

const ClusterView* MeshView::FindCluster(std::string_view name) const {
  auto it = clusters_.find(name);
  return it == clusters_.end() ? nullptr : &it->second;
}

const google::protobuf::Struct* MeshView::DirectionConfigs::Find(std::string_view service,
                                                                std::string_view plugin) const {
  const ServiceView* s = view_.FindServiceByName(service, inbound_);
  if (s == nullptr) return nullptr;
  auto it = s->config->plugin_configs().find(std::string(plugin));
  return it == s->config->plugin_configs().end() ? nullptr : &it->second;
}

uint64_t TotalWeight(const google::protobuf::RepeatedPtrField<v1::WeightedCluster>& clusters) {
  uint64_t total = 0;
  for (const v1::WeightedCluster& c : clusters) total += c.weight();
  return total;
}

const std::string* PickWeighted(
    const google::protobuf::RepeatedPtrField<v1::WeightedCluster>& clusters, uint64_t ticket) {
  uint64_t total = TotalWeight(clusters);
  if (total == 0) return nullptr;
  uint64_t point = ticket % total;
  for (const v1::WeightedCluster& c : clusters) {
    if (point < c.weight()) return &c.cluster();
    point -= c.weight();
  }
  return nullptr;
}

std::chrono::milliseconds DurationOr(const google::protobuf::Duration& d, bool has,
                                     std::chrono::milliseconds fallback) {
  if (!has) return fallback;
  return std::chrono::milliseconds(d.seconds() * 1000 + d.nanos() / 1000000);
}

}  // namespace meshplug::agent::routing
