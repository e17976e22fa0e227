#include "control_plane/xds/envoy_resources.h"

#include <algorithm>
#include <map>
#include <set>

#include <google/protobuf/util/time_util.h>

#include "common/route_rules.h"
#include "common/strings.h"
#include "common/xds_types.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/http/fault/v3/fault.pb.h"
#include "envoy/extensions/filters/http/router/v3/router.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"

namespace meshplug::control_plane::xds {
namespace {

namespace core = envoy::config::core::v3;
namespace route = envoy::config::route::v3;
namespace hcm = envoy::extensions::filters::network::http_connection_manager::v3;
using google::protobuf::RepeatedPtrField;

core::ConfigSource Ads() {
  core::ConfigSource source;
  source.mutable_ads();
  source.set_resource_api_version(core::V3);
  return source;
}

constexpr char kFaultFilter[] = "envoy.filters.http.fault";
namespace fault = envoy::extensions::filters::http::fault::v3;

// `with_fault`: some route has faults, which the fault filter applies (it does nothing
// on routes without them).
envoy::config::listener::v3::Listener ListenerFor(const std::string& name, const std::string& route_config,
                                                  bool with_fault) {
  hcm::HttpConnectionManager manager;
  manager.set_stat_prefix(name);
  *manager.mutable_rds()->mutable_config_source() = Ads();
  manager.mutable_rds()->set_route_config_name(route_config);
  if (with_fault) {
    auto* filter = manager.add_http_filters();
    filter->set_name(kFaultFilter);
    filter->mutable_typed_config()->PackFrom(fault::HTTPFault());
  }
  auto* router = manager.add_http_filters();
  router->set_name("envoy.filters.http.router");
  router->mutable_typed_config()->PackFrom(envoy::extensions::filters::http::router::v3::Router());
  envoy::config::listener::v3::Listener listener;
  listener.set_name(name);
  listener.mutable_api_listener()->mutable_api_listener()->PackFrom(manager);
  return listener;
}

// meshplug compares header names case-insensitively; Envoy and gRPC see them in lower case.
route::HeaderMatcher HeaderMatcherFor(const v1::HeaderMatch& h) {
  route::HeaderMatcher m;
  m.set_name(Lower(h.name()));
  switch (h.value_case()) {
    case v1::HeaderMatch::kExact: m.set_exact_match(h.exact()); break;
    case v1::HeaderMatch::kPrefix: m.set_prefix_match(h.prefix()); break;
    case v1::HeaderMatch::kRegex: m.mutable_safe_regex_match()->set_regex(h.regex()); break;
    case v1::HeaderMatch::kPresent:
      m.set_present_match(true);
      m.set_invert_match(!h.present());
      break;
    case v1::HeaderMatch::VALUE_NOT_SET: m.set_present_match(true); break;
  }
  return m;
}

route::RouteMatch MatchFor(const v1::RouteMatch& in) {
  route::RouteMatch m;
  switch (in.path_case()) {
    case v1::RouteMatch::kExact: m.set_path(in.exact()); break;
    case v1::RouteMatch::kPrefix: m.set_prefix(in.prefix()); break;
    case v1::RouteMatch::kRegex: m.mutable_safe_regex()->set_regex(in.regex()); break;
    case v1::RouteMatch::PATH_NOT_SET: m.set_prefix(""); break;
  }
  for (const auto& h : in.headers()) *m.add_headers() = HeaderMatcherFor(h);
  if (in.methods_size() > 0) {
    auto* method = m.add_headers();
    method->set_name(":method");
    method->mutable_safe_regex_match()->set_regex(Join(in.methods(), "|"));
  }
  return m;
}

// meshplug retries connect failures always and the listed HTTP statuses; a gRPC client
// sees a failed connection as UNAVAILABLE.
route::RetryPolicy RetryFor(const v1::RetryPolicy& in) {
  route::RetryPolicy r;
  r.set_retry_on(in.retry_on_status().empty() ? "connect-failure,unavailable"
                                              : "connect-failure,unavailable,retriable-status-codes");
  r.mutable_num_retries()->set_value(in.num_retries());
  for (uint32_t status : in.retry_on_status()) r.add_retriable_status_codes(status);
  *r.mutable_retry_back_off()->mutable_base_interval() =
      in.has_backoff_base() ? in.backoff_base()
                            : google::protobuf::util::TimeUtil::MillisecondsToDuration(kDefaultRetryBackoff.count());
  return r;
}

// The action of a route to `clusters` (weight-0 ones never chosen); false when none is left.
bool SetAction(const RepeatedPtrField<v1::WeightedCluster>& clusters, const v1::HttpRoute* in,
               route::RouteAction* action, std::set<std::string>& used) {
  std::vector<const v1::WeightedCluster*> chosen;
  for (const auto& wc : clusters) {
    if (wc.weight() > 0) chosen.push_back(&wc);
  }
  if (chosen.empty()) return false;
  if (chosen.size() == 1) {
    action->set_cluster(chosen[0]->cluster());
  } else {
    uint32_t total = 0;
    for (const auto* wc : chosen) {
      auto* cw = action->mutable_weighted_clusters()->add_clusters();
      cw->set_name(wc->cluster());
      cw->mutable_weight()->set_value(wc->weight());
      total += wc->weight();
    }
    action->mutable_weighted_clusters()->mutable_total_weight()->set_value(total);
  }
  for (const auto* wc : chosen) used.insert(wc->cluster());
  if (in && in->has_timeout()) {
    *action->mutable_timeout() = in->timeout();
    // gRPC's clients read the route timeout from here.
    *action->mutable_max_stream_duration()->mutable_max_stream_duration() = in->timeout();
  }
  if (in && in->retry().num_retries() > 0) *action->mutable_retry_policy() = RetryFor(in->retry());
  return true;
}

fault::HTTPFault FaultFor(const v1::FaultInjection& in) {
  fault::HTTPFault out;
  if (in.delay_percent() > 0) {
    *out.mutable_delay()->mutable_fixed_delay() = in.delay();
    out.mutable_delay()->mutable_percentage()->set_numerator(in.delay_percent());
  }
  if (in.abort_status() != 0) {
    out.mutable_abort()->set_http_status(in.abort_status());
    out.mutable_abort()->mutable_percentage()->set_numerator(in.abort_percent());
  }
  return out;  // percentages out of HUNDRED, the default denominator
}

// Round robin over EDS: the control plane sets no other balancing or timeouts per cluster.
envoy::config::cluster::v3::Cluster ClusterFor(const std::string& name) {
  envoy::config::cluster::v3::Cluster c;
  c.set_name(name);
  c.set_type(envoy::config::cluster::v3::Cluster::EDS);
  *c.mutable_eds_cluster_config()->mutable_eds_config() = Ads();
  return c;
}

// One assignment of all of a cluster's pages: EDS has one resource per cluster.
envoy::config::endpoint::v3::ClusterLoadAssignment AssignmentFor(const std::string& name,
                                                                 const std::vector<const v1::Endpoints*>& pages) {
  envoy::config::endpoint::v3::ClusterLoadAssignment a;
  a.set_cluster_name(name);
  if (pages.empty()) return a;
  // One locality of weight 1: a client skips a locality without a weight.
  auto* locality = a.add_endpoints();
  locality->mutable_locality();
  locality->mutable_load_balancing_weight()->set_value(1);
  for (const v1::Endpoints* page : pages) {
    for (const auto& ep : page->endpoints()) {
      if (ep.address().empty()) continue;  // nothing a client could connect to
      auto* lb = locality->add_lb_endpoints();
      auto* socket = lb->mutable_endpoint()->mutable_address()->mutable_socket_address();
      socket->set_address(ep.address());
      socket->set_port_value(ep.port());
      lb->set_health_status(core::HEALTHY);
      if (ep.weight() > 1) lb->mutable_load_balancing_weight()->set_value(ep.weight());
    }
  }
  return a;
}

}  // namespace

const std::vector<std::string>& EnvoyTypeUrls() {
  static const std::vector<std::string> urls = {
      xds_types::AnyTypeUrl(*envoy::config::cluster::v3::Cluster::descriptor()),
      xds_types::AnyTypeUrl(*envoy::config::endpoint::v3::ClusterLoadAssignment::descriptor()),
      xds_types::AnyTypeUrl(*envoy::config::listener::v3::Listener::descriptor()),
      xds_types::AnyTypeUrl(*route::RouteConfiguration::descriptor()),
  };
  return urls;
}

bool IsEnvoyType(std::string_view type_url) {
  const auto& urls = EnvoyTypeUrls();
  return std::find(urls.begin(), urls.end(), type_url) != urls.end();
}

void ForEachEnvoyResource(const v1::Snapshot& snapshot,
                          const std::function<void(const std::string& name, const google::protobuf::Message&)>& fn) {
  std::map<std::string, std::vector<const v1::Endpoints*>> endpoints;  // by cluster, its pages
  for (const auto& e : snapshot.endpoints()) endpoints[e.cluster()].push_back(&e);
  std::set<std::string> used;  // clusters the routes lead to
  for (const auto& service : snapshot.services()) {
    if (service.inbound()) continue;
    for (const auto& port : service.ports()) {
      const std::string name = Cat(service.name(), ":", port.port());
      route::RouteConfiguration config;
      config.set_name(Cat(name, "@", service.revision()));
      auto* host = config.add_virtual_hosts();
      bool with_fault = false;
      host->set_name(service.name());
      host->add_domains("*");  // one route configuration per listener: no host to choose
      if (port.protocol() == v1::PROTOCOL_TCP) {
        auto* r = host->add_routes();
        r->set_name(Cat("port-", port.port()));
        r->mutable_match()->set_prefix("");
        if (!SetAction(port.tcp_clusters(), nullptr, r->mutable_route(), used)) host->clear_routes();
      } else {
        for (const auto& in : service.routes()) {
          if (in.match().port() != 0 && in.match().port() != port.port()) continue;
          route::Route r;
          r.set_name(in.name());
          *r.mutable_match() = MatchFor(in.match());
          if (!SetAction(in.clusters(), &in, r.mutable_route(), used)) continue;
          if (in.has_fault()) {
            (*r.mutable_typed_per_filter_config())[kFaultFilter].PackFrom(FaultFor(in.fault()));
            with_fault = true;
          }
          *host->add_routes() = std::move(r);
        }
      }
      if (host->routes().empty()) continue;  // a client refuses a virtual host without routes
      fn(name, ListenerFor(name, config.name(), with_fault));
      fn(config.name(), config);
    }
  }
  static const std::vector<const v1::Endpoints*> kNoPages;
  for (const auto& name : used) {
    fn(name, ClusterFor(name));
    const auto pages = endpoints.find(name);
    fn(name, AssignmentFor(name, pages != endpoints.end() ? pages->second : kNoPages));
  }
}

}  // namespace meshplug::control_plane::xds
