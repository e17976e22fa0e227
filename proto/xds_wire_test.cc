// Wire compatibility with Envoy's xDS v3 protos: messages are encoded by hand from the
// field numbers and wire types of Envoy's .proto files (see shared/reference/xds-v3.md),
// then parsed by the generated code, and the generated code's output is compared with the
// hand encoding. A wrong field number or type in proto/ makes one of these fail.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/core/v3/base.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/http/fault/v3/fault.pb.h"
#include "envoy/extensions/filters/http/router/v3/router.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "envoy/service/discovery/v3/ads.grpc.pb.h"
#include "envoy/service/discovery/v3/discovery.pb.h"
#include "google/protobuf/any.pb.h"
#include "google/protobuf/duration.pb.h"
#include "google/rpc/status.pb.h"
#include "proto/testing/wire.h"

namespace {

using envoy::service::discovery::v3::DeltaDiscoveryRequest;
using envoy::service::discovery::v3::DeltaDiscoveryResponse;
using envoy::service::discovery::v3::DiscoveryRequest;
using envoy::service::discovery::v3::DiscoveryResponse;
using envoy::service::discovery::v3::Resource;

using namespace meshplug::wire;

// Any{type_url = 1; value = 2}
std::string AnyBytes(const std::string& type_url, const std::string& value) {
  return Str(1, type_url) + Str(2, value);
}

// google.rpc.Status{code = 1; message = 2}
std::string StatusBytes(int code, const std::string& message) {
  return Int(1, code) + Str(2, message);
}

// Node with id 1, cluster 2, locality 4 {region 1, zone 2, sub_zone 3},
// user_agent_name 6, user_agent_version 7, client_features 10.
std::string NodeBytes() {
  return Str(1, "agent-1") + Str(2, "httpbin") +
         Msg(4, Str(1, "r1") + Str(2, "z1") + Str(3, "s1")) + Str(6, "meshplug-agent") +
         Str(7, "0.1.0") + Str(10, "xds.config.resource-in-sotw");
}

void ExpectNode(const envoy::config::core::v3::Node& node) {
  EXPECT_EQ(node.id(), "agent-1");
  EXPECT_EQ(node.cluster(), "httpbin");
  EXPECT_EQ(node.locality().region(), "r1");
  EXPECT_EQ(node.locality().zone(), "z1");
  EXPECT_EQ(node.locality().sub_zone(), "s1");
  EXPECT_EQ(node.user_agent_name(), "meshplug-agent");
  EXPECT_EQ(node.user_agent_version(), "0.1.0");
  ASSERT_EQ(node.client_features_size(), 1);
  EXPECT_EQ(node.client_features(0), "xds.config.resource-in-sotw");
}

TEST(XdsWire, DiscoveryRequestParsesEnvoyEncoding) {
  const std::string bytes = Str(1, "v7") + Msg(2, NodeBytes()) + Str(3, "a") + Str(3, "b") +
                            Str(4, "type.googleapis.com/meshplug.v1.Chain") + Str(5, "n3") +
                            Msg(6, StatusBytes(3, "bad script"));
  const auto req = Parse<DiscoveryRequest>(bytes);
  EXPECT_EQ(req.version_info(), "v7");
  ExpectNode(req.node());
  ASSERT_EQ(req.resource_names_size(), 2);
  EXPECT_EQ(req.resource_names(1), "b");
  EXPECT_EQ(req.type_url(), "type.googleapis.com/meshplug.v1.Chain");
  EXPECT_EQ(req.response_nonce(), "n3");
  EXPECT_EQ(req.error_detail().code(), 3);
  EXPECT_EQ(req.error_detail().message(), "bad script");
  EXPECT_EQ(req.SerializeAsString(), bytes);
}

TEST(XdsWire, DiscoveryResponseSerializesEnvoyEncoding) {
  DiscoveryResponse resp;
  resp.set_version_info("v8");
  auto* any = resp.add_resources();
  any->set_type_url("type.googleapis.com/meshplug.v1.Chain");
  any->set_value("payload");
  resp.set_canary(true);
  resp.set_type_url("type.googleapis.com/meshplug.v1.Chain");
  resp.set_nonce("n4");
  resp.mutable_control_plane()->set_identifier("cp-0");
  auto* err = resp.add_resource_errors();
  err->mutable_resource_name()->set_name("x");
  err->mutable_error_detail()->set_code(5);

  const std::string expected =
      Str(1, "v8") + Msg(2, AnyBytes("type.googleapis.com/meshplug.v1.Chain", "payload")) +
      Int(3, 1) + Str(4, "type.googleapis.com/meshplug.v1.Chain") + Str(5, "n4") +
      Msg(6, Str(1, "cp-0")) + Msg(7, Msg(1, Str(1, "x")) + Msg(2, Int(1, 5)));
  EXPECT_EQ(resp.SerializeAsString(), expected);
  EXPECT_EQ(Parse<DiscoveryResponse>(expected).nonce(), "n4");
}

TEST(XdsWire, DeltaDiscoveryRequestParsesEnvoyEncoding) {
  // map<string,string> entries are messages {key = 1; value = 2}.
  const std::string bytes = Msg(1, NodeBytes()) + Str(2, "t") + Str(3, "sub") + Str(4, "unsub") +
                            Msg(5, Str(1, "res") + Str(2, "ver")) + Str(6, "n5") +
                            Msg(7, StatusBytes(3, "nack"));
  const auto req = Parse<DeltaDiscoveryRequest>(bytes);
  ExpectNode(req.node());
  EXPECT_EQ(req.type_url(), "t");
  EXPECT_EQ(req.resource_names_subscribe(0), "sub");
  EXPECT_EQ(req.resource_names_unsubscribe(0), "unsub");
  EXPECT_EQ(req.initial_resource_versions().at("res"), "ver");
  EXPECT_EQ(req.response_nonce(), "n5");
  EXPECT_EQ(req.error_detail().message(), "nack");
  EXPECT_EQ(req.SerializeAsString(), bytes);
}

TEST(XdsWire, DeltaDiscoveryResponseSerializesEnvoyEncoding) {
  DeltaDiscoveryResponse resp;
  resp.set_system_version_info("sys");
  auto* r = resp.add_resources();
  r->set_version("h1");
  r->mutable_resource()->set_type_url("t");
  r->mutable_resource()->set_value("v");
  r->set_name("res");
  r->add_aliases("alias");
  r->mutable_ttl()->set_seconds(30);
  r->mutable_cache_control()->set_do_not_cache(true);
  r->mutable_resource_name()->set_name("res");
  resp.set_type_url("t");
  resp.set_nonce("n6");
  resp.add_removed_resources("gone");
  resp.mutable_control_plane()->set_identifier("cp");
  resp.add_removed_resource_names()->set_name("gone");
  resp.add_resource_errors()->mutable_resource_name()->set_name("bad");

  // Resource: version 1, resource 2, name 3, aliases 4, ttl 6, cache_control 7,
  // resource_name 8.
  const std::string resource = Str(1, "h1") + Msg(2, AnyBytes("t", "v")) + Str(3, "res") +
                               Str(4, "alias") + Msg(6, Int(1, 30)) + Msg(7, Int(1, 1)) +
                               Msg(8, Str(1, "res"));
  const std::string expected = Str(1, "sys") + Msg(2, resource) + Str(4, "t") + Str(5, "n6") +
                               Str(6, "gone") + Msg(7, Str(1, "cp")) + Msg(8, Str(1, "gone")) +
                               Msg(9, Msg(1, Str(1, "bad")));
  EXPECT_EQ(resp.SerializeAsString(), expected);
  EXPECT_EQ(Parse<DeltaDiscoveryResponse>(expected).resources(0).ttl().seconds(), 30);
}

TEST(XdsWire, NodeBuildVersionAndExtensions) {
  // user_agent_build_version 8 {version 1 {major 1, minor 2, patch 3}},
  // extensions 9 {name 1, category 2, version 4, disabled 5, type_urls 6}.
  const std::string semver = Int(1, 1) + Int(2, 2) + Int(3, 3);
  const std::string bytes =
      Str(1, "n") + Msg(8, Msg(1, semver)) +
      Msg(9, Str(1, "envoy.filters.http.lua") + Str(2, "envoy.filters.http") +
                 Msg(4, Msg(1, semver)) + Int(5, 1) + Str(6, "type.googleapis.com/x"));
  const auto node = Parse<envoy::config::core::v3::Node>(bytes);
  EXPECT_EQ(node.user_agent_build_version().version().minor_number(), 2u);
  ASSERT_EQ(node.extensions_size(), 1);
  EXPECT_EQ(node.extensions(0).category(), "envoy.filters.http");
  EXPECT_EQ(node.extensions(0).version().version().patch(), 3u);
  EXPECT_TRUE(node.extensions(0).disabled());
  EXPECT_EQ(node.extensions(0).type_urls(0), "type.googleapis.com/x");
  EXPECT_EQ(node.SerializeAsString(), bytes);
}

TEST(XdsWire, ServiceMethodPathsMatchEnvoy) {
  namespace ads = envoy::service::discovery::v3;
  EXPECT_STREQ(ads::AggregatedDiscoveryService::service_full_name(),
               "envoy.service.discovery.v3.AggregatedDiscoveryService");
  const auto* svc = ads::DiscoveryRequest::descriptor()->file()->pool()->FindServiceByName(
      "envoy.service.discovery.v3.AggregatedDiscoveryService");
  ASSERT_NE(svc, nullptr);
  const auto* sotw = svc->FindMethodByName("StreamAggregatedResources");
  const auto* delta = svc->FindMethodByName("DeltaAggregatedResources");
  ASSERT_NE(sotw, nullptr);
  ASSERT_NE(delta, nullptr);
  EXPECT_TRUE(sotw->client_streaming() && sotw->server_streaming());
  EXPECT_EQ(sotw->input_type()->full_name(), "envoy.service.discovery.v3.DiscoveryRequest");
  EXPECT_EQ(delta->output_type()->full_name(),
            "envoy.service.discovery.v3.DeltaDiscoveryResponse");
}

TEST(XdsWire, TypeUrlsUseEnvoyPackageNames) {
  google::protobuf::Any any;
  any.PackFrom(DiscoveryRequest());
  EXPECT_EQ(any.type_url(), "type.googleapis.com/envoy.service.discovery.v3.DiscoveryRequest");
  any.PackFrom(google::rpc::Status());
  EXPECT_EQ(any.type_url(), "type.googleapis.com/google.rpc.Status");
}

// Envoy's resource types: each encoded by hand as Envoy's .proto files number it, then
// parsed (no field unknown) and written back byte for byte.
template <typename M>
void ExpectRoundTrip(const std::string& bytes) {
  M m = Parse<M>(bytes);
  EXPECT_EQ(m.SerializeAsString(), bytes) << m.DebugString();
}

// Duration{seconds = 1; nanos = 2}, zeros left out as proto3 does; UInt32Value{value = 1}
std::string DurationBytes(int64_t s, int32_t nanos) { return (s ? Int(1, s) : "") + (nanos ? Int(2, nanos) : ""); }
std::string U32(int field, uint32_t v) { return Msg(field, Int(1, v)); }
// ConfigSource{ads = 3 (AggregatedConfigSource{}); resource_api_version = 6 (V3 = 2)}
std::string AdsSource() { return Msg(3, "") + Int(6, 2); }

TEST(XdsWire, ListenerWithApiListenerAndRdsMatchesEnvoy) {
  // HttpConnectionManager{stat_prefix 2; rds 3 {config_source 1; route_config_name 2};
  // http_filters 5 {name 1; typed_config 4}}
  // Any{type_url 1} (an empty Router has no value bytes)
  const std::string router = Str(1, "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router");
  const std::string hcm = Str(2, "grpc.demo:50051") + Msg(3, Msg(1, AdsSource()) + Str(2, "grpc.demo:50051")) +
                          Msg(5, Str(1, "envoy.filters.http.router") + Msg(4, router));
  ExpectRoundTrip<envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager>(hcm);
  // Listener{name 1; api_listener 19 {api_listener 1 (Any)}}
  const std::string any = AnyBytes(
      "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager", hcm);
  ExpectRoundTrip<envoy::config::listener::v3::Listener>(Str(1, "grpc.demo:50051") + Msg(19, Msg(1, any)));
}

TEST(XdsWire, RouteConfigurationMatchesEnvoy) {
  // RouteMatch{prefix 1 | path 2 | safe_regex 10 {regex 2}; headers 6 {name 1; exact_match 4 |
  // safe_regex_match 11 | present_match 7 | prefix_match 9; invert_match 8}}
  const std::string match = Str(1, "/echo.Echo/") + Msg(6, Str(1, "x-canary") + Str(4, "yes")) +
                            Msg(6, Str(1, "x-a") + Msg(11, Str(2, "a.*"))) + Msg(6, Str(1, "x-b") + Int(7, 1) + Int(8, 1)) +
                            Msg(6, Str(1, "x-c") + Str(9, "pre"));
  ExpectRoundTrip<envoy::config::route::v3::RouteMatch>(match);
  ExpectRoundTrip<envoy::config::route::v3::RouteMatch>(Str(2, "/exact"));
  ExpectRoundTrip<envoy::config::route::v3::RouteMatch>(Msg(10, Str(2, "/x/[0-9]+")));
  // WeightedCluster{clusters 1 {name 1; weight 2 (UInt32Value)}; total_weight 3}
  const std::string weighted = Msg(1, Str(1, "a|50051") + U32(2, 80)) + Msg(1, Str(1, "b|50051") + U32(2, 20)) +
                               U32(3, 100);
  // RetryPolicy{retry_on 1; num_retries 2; retriable_status_codes 7 (packed); retry_back_off 8 {base_interval 1}}
  const std::string retry = Str(1, "connect-failure,retriable-status-codes,unavailable") + U32(2, 2) +
                            Str(7, Varint(503) + Varint(502)) + Msg(8, Msg(1, DurationBytes(0, 25000000)));
  // RouteAction{weighted_clusters 3; timeout 8; retry_policy 9; max_stream_duration 36 {max_stream_duration 1}}
  const std::string action = Msg(3, weighted) + Msg(8, DurationBytes(1, 0)) + Msg(9, retry) +
                             Msg(36, Msg(1, DurationBytes(1, 0)));
  ExpectRoundTrip<envoy::config::route::v3::RouteAction>(action);
  ExpectRoundTrip<envoy::config::route::v3::RouteAction>(Str(1, "a|50051"));
  // Route{match 1; route 2; name 14} in VirtualHost{name 1; domains 2; routes 3} in
  // RouteConfiguration{name 1; virtual_hosts 2}
  const std::string route = Msg(1, match) + Msg(2, action) + Str(14, "split");
  const std::string vhost = Str(1, "grpc.demo") + Str(2, "*") + Msg(3, route);
  ExpectRoundTrip<envoy::config::route::v3::RouteConfiguration>(Str(1, "grpc.demo:50051") + Msg(2, vhost));
}

TEST(XdsWire, ClusterMatchesEnvoy) {
  // Cluster{name 1; type 2 (EDS = 3); eds_cluster_config 3 {eds_config 1}}
  ExpectRoundTrip<envoy::config::cluster::v3::Cluster>(Str(1, "grpc.demo|50051") + Int(2, 3) +
                                                       Msg(3, Msg(1, AdsSource())));
}

TEST(XdsWire, ClusterLoadAssignmentMatchesEnvoy) {
  // Address{socket_address 1 {address 2; port_value 3}}
  const std::string address = Msg(1, Str(2, "127.0.0.1") + Int(3, 50051));
  // LbEndpoint{endpoint 1 {address 1}; health_status 2 (HEALTHY = 1, DRAINING = 3); load_balancing_weight 4}
  const std::string healthy = Msg(1, Msg(1, address)) + Int(2, 1) + U32(4, 2);
  const std::string draining = Msg(1, Msg(1, Msg(1, Str(2, "10.0.0.2") + Int(3, 80)))) + Int(2, 3);
  // LocalityLbEndpoints{locality 1 (empty); lb_endpoints 2; load_balancing_weight 3}
  const std::string locality = Msg(1, "") + Msg(2, healthy) + Msg(2, draining) + U32(3, 1);
  // ClusterLoadAssignment{cluster_name 1; endpoints 2}
  const std::string bytes = Str(1, "grpc.demo|50051") + Msg(2, locality);
  const auto cla = Parse<envoy::config::endpoint::v3::ClusterLoadAssignment>(bytes);
  ASSERT_EQ(cla.endpoints(0).lb_endpoints_size(), 2);
  EXPECT_EQ(cla.endpoints(0).lb_endpoints(0).endpoint().address().socket_address().port_value(), 50051u);
  EXPECT_EQ(cla.endpoints(0).lb_endpoints(1).health_status(), envoy::config::core::v3::DRAINING);
  EXPECT_EQ(cla.SerializeAsString(), bytes);
}

TEST(XdsWire, FaultFilterAndPerRouteConfigMatchEnvoy) {
  // HTTPFault{delay 1 (FaultDelay{fixed_delay 3; percentage 4 {numerator 1; denominator 2}});
  // abort 2 (FaultAbort{http_status 2; percentage 3})}
  const std::string fault = Msg(1, Msg(3, DurationBytes(0, 200000000)) + Msg(4, Int(1, 50) + Int(2, 1))) +
                            Msg(2, Int(2, 503) + Msg(3, Int(1, 10)));
  ExpectRoundTrip<envoy::extensions::filters::http::fault::v3::HTTPFault>(fault);
  // Route{typed_per_filter_config 13: map entry {key 1; value 2 (Any)}}
  const std::string any = AnyBytes("type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault", fault);
  ExpectRoundTrip<envoy::config::route::v3::Route>(Msg(13, Str(1, "envoy.filters.http.fault") + Msg(2, any)));
}

TEST(XdsWire, EnvoyResourceTypeUrls) {
  google::protobuf::Any any;
  any.PackFrom(envoy::config::listener::v3::Listener());
  EXPECT_EQ(any.type_url(), "type.googleapis.com/envoy.config.listener.v3.Listener");
  any.PackFrom(envoy::config::route::v3::RouteConfiguration());
  EXPECT_EQ(any.type_url(), "type.googleapis.com/envoy.config.route.v3.RouteConfiguration");
  any.PackFrom(envoy::config::cluster::v3::Cluster());
  EXPECT_EQ(any.type_url(), "type.googleapis.com/envoy.config.cluster.v3.Cluster");
  any.PackFrom(envoy::config::endpoint::v3::ClusterLoadAssignment());
  EXPECT_EQ(any.type_url(), "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment");
  any.PackFrom(envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager());
  EXPECT_EQ(any.type_url(),
            "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager");
  any.PackFrom(envoy::extensions::filters::http::router::v3::Router());
  EXPECT_EQ(any.type_url(), "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router");
}

}  // namespace
