#include "control_plane/xds/envoy_resources.h"

#include <google/protobuf/any.pb.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>

#include "control_plane/xds/resources.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/http/fault/v3/fault.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"

namespace meshplug::control_plane::xds {
namespace {

namespace route = envoy::config::route::v3;

// An agent's destinations as the control plane translates them: a gRPC Service with an
// HTTPRoute's split in front of its default route, a TCP Service, and its own (inbound).
v1::Snapshot Destinations() {
  v1::Snapshot snap;
  auto* echo = snap.add_services();
  echo->set_name("echo.demo");
  echo->set_revision(7);
  auto* port = echo->add_ports();
  port->set_port(50051);
  port->set_protocol(v1::PROTOCOL_GRPC);
  auto* split = echo->add_routes();
  split->set_name("split/0");
  split->mutable_match()->set_prefix("/demo.Echo/");
  split->mutable_match()->set_port(50051);
  auto* header = split->mutable_match()->add_headers();
  header->set_name("X-Canary");
  header->set_regex("a.*");
  for (auto [name, weight] : {std::pair{"echo-v1.demo|50051", 80u}, {"echo-v2.demo|50051", 20u}, {"never|1", 0u}}) {
    auto* wc = split->add_clusters();
    wc->set_cluster(name);
    wc->set_weight(weight);
  }
  split->mutable_timeout()->set_seconds(1);
  split->mutable_retry()->set_num_retries(2);
  split->mutable_retry()->add_retry_on_status(503);
  split->mutable_fault()->mutable_delay()->set_nanos(200'000'000);
  split->mutable_fault()->set_delay_percent(50);
  split->mutable_fault()->set_abort_status(503);
  split->mutable_fault()->set_abort_percent(10);
  auto* other_port = echo->add_routes();  // for a port the Service does not have here
  other_port->set_name("elsewhere/0");
  other_port->mutable_match()->set_port(9999);
  other_port->add_clusters()->set_cluster("echo-v1.demo|50051");
  other_port->mutable_clusters(0)->set_weight(1);
  auto* fallback = echo->add_routes();
  fallback->set_name("port-50051");
  fallback->mutable_match()->set_prefix("/");
  fallback->mutable_match()->set_port(50051);
  fallback->add_clusters()->set_cluster("echo.demo|50051");
  fallback->mutable_clusters(0)->set_weight(100);

  auto* db = snap.add_services();
  db->set_name("db.demo");
  auto* db_port = db->add_ports();
  db_port->set_port(5432);
  db_port->set_protocol(v1::PROTOCOL_TCP);
  db_port->add_tcp_clusters()->set_cluster("db.demo|5432");
  db_port->mutable_tcp_clusters(0)->set_weight(100);

  auto* own = snap.add_services();
  own->set_name("self.demo");
  own->set_inbound(true);
  own->add_ports()->set_port(80);
  own->add_routes()->add_clusters()->set_cluster("self.demo|80|local");

  for (const char* name : {"echo.demo|50051", "echo-v1.demo|50051", "echo-v2.demo|50051", "db.demo|5432"}) {
    snap.add_clusters()->set_name(name);
  }
  auto* eps = snap.add_endpoints();
  eps->set_cluster("echo.demo|50051");
  auto* ep = eps->add_endpoints();
  ep->set_address("10.0.0.1");
  ep->set_port(50051);
  ep->set_weight(3);
  eps->add_endpoints()->set_port(50051);  // no address: nothing to connect to
  return snap;
}

using ByTypeAndName = std::map<std::string, std::map<std::string, std::unique_ptr<google::protobuf::Message>>>;

ByTypeAndName Translate(const v1::Snapshot& snap) {
  ByTypeAndName out;
  ForEachEnvoyResource(snap, [&](const std::string& name, const google::protobuf::Message& msg) {
    std::unique_ptr<google::protobuf::Message> copy(msg.New());
    copy->CopyFrom(msg);
    EXPECT_TRUE(out[msg.GetDescriptor()->name()].emplace(name, std::move(copy)).second) << name << " twice";
  });
  return out;
}

template <typename M>
const M& Get(const ByTypeAndName& all, const std::string& name) {
  static const M kNone;
  auto type = all.find(M::descriptor()->name());
  if (type == all.end() || !type->second.count(name)) {
    ADD_FAILURE() << "no " << M::descriptor()->name() << " " << name;
    return kNone;
  }
  return static_cast<const M&>(*type->second.at(name));
}

TEST(EnvoyResources, AListenerPerServicePortNamesItsRouteConfigurationOverAds) {
  const auto all = Translate(Destinations());
  const auto& listener = Get<envoy::config::listener::v3::Listener>(all, "echo.demo:50051");
  envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager hcm;
  ASSERT_TRUE(listener.api_listener().api_listener().UnpackTo(&hcm));
  EXPECT_EQ(hcm.rds().route_config_name(), "echo.demo:50051@7");
  EXPECT_TRUE(hcm.rds().config_source().has_ads());
  EXPECT_EQ(hcm.rds().config_source().resource_api_version(), envoy::config::core::v3::V3);
  // A route has faults: the fault filter, then the router (last, as clients require).
  ASSERT_EQ(hcm.http_filters_size(), 2);
  EXPECT_EQ(hcm.http_filters(0).name(), "envoy.filters.http.fault");
  EXPECT_EQ(hcm.http_filters(1).typed_config().type_url(),
            "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router");
  // Without faults, the router alone.
  const auto& db = Get<envoy::config::listener::v3::Listener>(all, "db.demo:5432");
  ASSERT_TRUE(db.api_listener().api_listener().UnpackTo(&hcm));
  EXPECT_EQ(hcm.http_filters_size(), 1);
  // The agent's own service is not a destination.
  EXPECT_EQ(all.at("Listener").size(), 2u);
  EXPECT_FALSE(all.at("Listener").count("self.demo:80"));
}

TEST(EnvoyResources, RoutesCarryMatchesSplitsTimeoutsAndRetries) {
  const auto all = Translate(Destinations());
  const auto& config = Get<route::RouteConfiguration>(all, "echo.demo:50051@7");
  ASSERT_EQ(config.virtual_hosts_size(), 1);
  const auto& host = config.virtual_hosts(0);
  EXPECT_EQ(host.domains(0), "*");
  ASSERT_EQ(host.routes_size(), 2) << host.DebugString();  // the other port's route is not here
  const route::Route& split = host.routes(0);
  EXPECT_EQ(split.match().prefix(), "/demo.Echo/");
  EXPECT_EQ(split.match().headers(0).name(), "x-canary");
  EXPECT_EQ(split.match().headers(0).safe_regex_match().regex(), "a.*");
  const auto& weighted = split.route().weighted_clusters();
  ASSERT_EQ(weighted.clusters_size(), 2);  // weight 0 is never chosen
  EXPECT_EQ(weighted.clusters(0).weight().value(), 80u);
  EXPECT_EQ(weighted.total_weight().value(), 100u);
  EXPECT_EQ(split.route().timeout().seconds(), 1);
  EXPECT_EQ(split.route().max_stream_duration().max_stream_duration().seconds(), 1);
  EXPECT_EQ(split.route().retry_policy().num_retries().value(), 2u);
  EXPECT_EQ(split.route().retry_policy().retry_on(), "connect-failure,unavailable,retriable-status-codes");
  EXPECT_EQ(split.route().retry_policy().retriable_status_codes(0), 503u);
  EXPECT_EQ(split.route().retry_policy().retry_back_off().base_interval().nanos(), 25'000'000);
  envoy::extensions::filters::http::fault::v3::HTTPFault fault;
  ASSERT_TRUE(split.typed_per_filter_config().at("envoy.filters.http.fault").UnpackTo(&fault));
  EXPECT_EQ(fault.delay().fixed_delay().nanos(), 200'000'000);
  EXPECT_EQ(fault.delay().percentage().numerator(), 50u);
  EXPECT_EQ(fault.abort().http_status(), 503u);
  EXPECT_EQ(fault.abort().percentage().numerator(), 10u);
  EXPECT_TRUE(host.routes(1).typed_per_filter_config().empty());
  EXPECT_EQ(host.routes(1).route().cluster(), "echo.demo|50051");

  const auto& tcp = Get<route::RouteConfiguration>(all, "db.demo:5432@0");
  ASSERT_EQ(tcp.virtual_hosts(0).routes_size(), 1);
  EXPECT_EQ(tcp.virtual_hosts(0).routes(0).route().cluster(), "db.demo|5432");
}

TEST(EnvoyResources, ClustersAreEdsOverAdsAndEndpointsOneWeightedLocality) {
  const auto all = Translate(Destinations());
  // The clusters routes lead to, not the agent's local one.
  EXPECT_EQ(all.at("Cluster").size(), 4u);
  const auto& cluster = Get<envoy::config::cluster::v3::Cluster>(all, "echo-v2.demo|50051");
  EXPECT_EQ(cluster.type(), envoy::config::cluster::v3::Cluster::EDS);
  EXPECT_TRUE(cluster.eds_cluster_config().eds_config().has_ads());
  const auto& cla = Get<envoy::config::endpoint::v3::ClusterLoadAssignment>(all, "echo.demo|50051");
  ASSERT_EQ(cla.endpoints_size(), 1);
  EXPECT_EQ(cla.endpoints(0).load_balancing_weight().value(), 1u);  // gRPC skips a locality without one
  ASSERT_EQ(cla.endpoints(0).lb_endpoints_size(), 1);
  const auto& ep = cla.endpoints(0).lb_endpoints(0);
  EXPECT_EQ(ep.endpoint().address().socket_address().address(), "10.0.0.1");
  EXPECT_EQ(ep.endpoint().address().socket_address().port_value(), 50051u);
  EXPECT_EQ(ep.health_status(), envoy::config::core::v3::HEALTHY);
  EXPECT_EQ(ep.load_balancing_weight().value(), 3u);
  // A cluster without endpoints still has its (empty) assignment: the client learns it is empty.
  EXPECT_EQ(Get<envoy::config::endpoint::v3::ClusterLoadAssignment>(all, "echo-v1.demo|50051").endpoints_size(), 0);
}

// EDS has one assignment per cluster: a cluster's Endpoints pages make one, named after it.
TEST(EnvoyResources, APagedClustersEndpointsMakeOneAssignment) {
  v1::Snapshot snap = Destinations();
  auto* page = snap.add_endpoints();
  page->set_cluster("echo.demo|50051");
  page->set_page(2);
  auto* ep = page->add_endpoints();
  ep->set_address("10.0.0.2");
  ep->set_port(50051);
  const auto all = Translate(snap);
  EXPECT_EQ(all.at("ClusterLoadAssignment").count("echo.demo|50051#2"), 0u);
  const auto& cla = Get<envoy::config::endpoint::v3::ClusterLoadAssignment>(all, "echo.demo|50051");
  ASSERT_EQ(cla.endpoints_size(), 1);
  std::vector<std::string> addresses;
  for (const auto& lb : cla.endpoints(0).lb_endpoints()) addresses.push_back(lb.endpoint().address().socket_address().address());
  EXPECT_EQ(addresses, (std::vector<std::string>{"10.0.0.1", "10.0.0.2"}));
}

TEST(EnvoyResources, AgentResourcesServeThemBesideMeshplugsTypes) {
  ResourceInterner interner;
  const auto resources = ToResources(Destinations(), interner);
  const std::string listener_url = "type.googleapis.com/envoy.config.listener.v3.Listener";
  const EncodedResource* listener = resources->Find(listener_url, "echo.demo:50051");
  ASSERT_NE(listener, nullptr);
  google::protobuf::Any any;
  ASSERT_TRUE(any.ParseFromArray(listener->AnyBytes().data(), static_cast<int>(listener->AnyBytes().size())));
  EXPECT_EQ(any.type_url(), listener_url);
  EXPECT_EQ(listener->version.size(), 16u);
  EXPECT_EQ(resources->TypeVersion(listener_url).size(), 16u);
  // The same snapshot, the same versions.
  const auto again = ToResources(Destinations(), interner);
  for (const auto& url : EnvoyTypeUrls()) EXPECT_EQ(again->TypeVersion(url), resources->TypeVersion(url)) << url;
  // meshplug's versions do not depend on Envoy's types.
  EXPECT_EQ(again->version, resources->version);
}

// Agents over the same shared destinations share one translation of Envoy's types.
TEST(EnvoyResources, AgentsOverOneBaseShareOneTranslation) {
  ResourceInterner interner;
  const auto base = ToResources(Destinations(), interner);
  v1::Snapshot own_a, own_b;
  own_a.mutable_settings()->mutable_workload()->set_name("a");
  own_b.mutable_settings()->mutable_workload()->set_name("b");
  const auto a = ToResources(own_a, interner, base);
  const auto b = ToResources(own_b, interner, base);
  const std::string url = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
  const EncodedResource* from_a = a->Find(url, "echo.demo:50051@7");
  ASSERT_NE(from_a, nullptr);
  EXPECT_EQ(from_a, b->Find(url, "echo.demo:50051@7"));
  EXPECT_EQ(&a->TypeVersion(url), &b->TypeVersion(url));
}

}  // namespace
}  // namespace meshplug::control_plane::xds
