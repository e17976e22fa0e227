#include "control_plane/xds/stream_protocol.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "common/xds_types.h"
#include "control_plane/xds/response_bytes.h"

namespace meshplug::control_plane::xds {
namespace {

const std::string& ServiceUrl() { return xds_types::UrlOf<v1::Service>(); }

// Resources with services named `names`, and a new version each time they change.
Resources WithServices(ResourceInterner& interner, const std::vector<std::string>& names) {
  v1::Snapshot snapshot;
  for (const std::string& name : names) snapshot.add_services()->set_name(name);
  return ToResources(snapshot, interner);
}

// The protocol's next response, as the agent parses it.
template <typename Protocol>
std::optional<typename Protocol::Response> Next(Protocol& protocol) {
  grpc::ByteBuffer bytes;
  if (!protocol.NextResponse(&bytes)) return std::nullopt;
  typename Protocol::Response resp;
  EXPECT_TRUE(ParseFrom(bytes, resp));
  return resp;
}

std::string AckedVersion(const AgentRegistry& registry, const std::string& type) {
  for (const v1::AgentStatus& agent : registry.List()) {
    for (const v1::TypeStatus& t : agent.types()) {
      if (t.type_url() == type) return t.acked_version();
    }
  }
  return "";
}

TEST(DeltaProtocol, SubscriptionsAreBoundedPerType) {
  AgentRegistry registry;
  ResourceInterner interner;
  DeltaProtocol protocol(registry, "shop/web", /*envoy_types_only=*/false);
  protocol.SetResources(WithServices(interner, {"a"}));
  DeltaProtocol::Request req;
  req.set_type_url(ServiceUrl());
  for (size_t i = 0; i < kMaxSubscribedNames + 500; ++i) req.add_resource_names_subscribe("missing-" + std::to_string(i));
  protocol.Handle(req);
  auto resp = Next(protocol);
  ASSERT_TRUE(resp);
  // Every subscribed name that does not exist is reported once; those past the bound were
  // never subscribed.
  EXPECT_EQ(static_cast<size_t>(resp->removed_resources_size()), kMaxSubscribedNames);
}

TEST(SotwProtocol, SubscriptionsAreBoundedPerType) {
  AgentRegistry registry;
  ResourceInterner interner;
  std::vector<std::string> names;
  for (size_t i = 0; i <= kMaxSubscribedNames; ++i) names.push_back("s" + std::to_string(100000 + i));
  SotwProtocol protocol(registry, "shop/web", /*envoy_types_only=*/false);
  protocol.SetResources(WithServices(interner, names));
  SotwProtocol::Request req;
  req.set_type_url(ServiceUrl());
  for (const std::string& name : names) req.add_resource_names(name);
  protocol.Handle(req);
  auto resp = Next(protocol);
  ASSERT_TRUE(resp);
  EXPECT_EQ(static_cast<size_t>(resp->resources_size()), kMaxSubscribedNames);
}

// An ACK names its response by nonce; it counts for any of the recent responses, also
// after nonces went past two digits.
TEST(DeltaProtocol, AckOfARecentResponseIsRecorded) {
  AgentRegistry registry;
  ResourceInterner interner;
  registry.Connected("shop/web", "delta", "test");
  DeltaProtocol protocol(registry, "shop/web", /*envoy_types_only=*/false);
  DeltaProtocol::Request subscribe;
  subscribe.set_type_url(ServiceUrl());
  protocol.Handle(subscribe);
  std::vector<DeltaProtocol::Response> sent;
  for (int i = 0; i < 20; ++i) {
    protocol.SetResources(WithServices(interner, {"v" + std::to_string(i)}));
    auto resp = Next(protocol);
    ASSERT_TRUE(resp);
    sent.push_back(*resp);
  }
  ASSERT_EQ(sent.back().nonce(), "20");
  DeltaProtocol::Request ack;
  ack.set_type_url(ServiceUrl());
  ack.set_response_nonce(sent[10].nonce());  // "11": older than "9" as text, newer as a number
  protocol.Handle(ack);
  EXPECT_EQ(AckedVersion(registry, ServiceUrl()), sent[10].system_version_info());
}

// New resources are sent for the types they changed (a removal too), and only those; a
// type that did not change still answers a subscription.
TEST(DeltaProtocol, NewResourcesSendTheTypesTheyChanged) {
  AgentRegistry registry;
  ResourceInterner interner;
  DeltaProtocol protocol(registry, "shop/web", /*envoy_types_only=*/false);
  const std::string& clusters = xds_types::UrlOf<v1::Cluster>();
  auto resources = [&](uint32_t port, bool with_b = true) {
    v1::Snapshot snapshot;
    auto* a = snapshot.add_services();
    a->set_name("a");
    a->add_ports()->set_port(port);
    snapshot.add_clusters()->set_name("a|80");
    if (with_b) snapshot.add_clusters()->set_name("b|80");
    return ToResources(snapshot, interner);
  };
  protocol.SetResources(resources(80));
  DeltaProtocol::Request services_request;
  services_request.set_type_url(ServiceUrl());
  protocol.Handle(services_request);
  DeltaProtocol::Request clusters_request;
  clusters_request.set_type_url(clusters);
  clusters_request.add_resource_names_subscribe("a|80");
  protocol.Handle(clusters_request);
  std::map<std::string, int> sent;
  while (auto resp = Next(protocol)) sent[resp->type_url()] += resp->resources_size();
  EXPECT_EQ(sent, (std::map<std::string, int>{{ServiceUrl(), 1}, {clusters, 1}}));

  protocol.SetResources(resources(81));
  auto resp = Next(protocol);
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->type_url(), ServiceUrl());
  EXPECT_FALSE(Next(protocol));
  protocol.SetResources(resources(81));  // the same again
  EXPECT_FALSE(Next(protocol));

  DeltaProtocol::Request more;
  more.set_type_url(clusters);
  more.add_resource_names_subscribe("b|80");
  protocol.Handle(more);
  resp = Next(protocol);
  ASSERT_TRUE(resp);
  ASSERT_EQ(resp->resources_size(), 1);
  EXPECT_EQ(resp->resources(0).name(), "b|80");
  EXPECT_FALSE(Next(protocol));

  protocol.SetResources(resources(81, /*with_b=*/false));  // a removal moves only its type
  resp = Next(protocol);
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->type_url(), clusters);
  EXPECT_EQ(resp->resources_size(), 0);
  ASSERT_EQ(resp->removed_resources_size(), 1);
  EXPECT_EQ(resp->removed_resources(0), "b|80");
  EXPECT_FALSE(Next(protocol));
}

// A wildcard state-of-the-world response holds the shared destinations (framed once for
// every agent over them) and the agent's own resources; where one of the agent's own
// replaces a shared one, the agent's is sent and the shared one is not.
TEST(SotwProtocol, AWildcardResponseHoldsTheSharedResourcesAndTheAgentsOwn) {
  AgentRegistry registry;
  ResourceInterner interner;
  v1::Snapshot destinations;
  for (const char* name : {"a", "b", "c"}) destinations.add_services()->set_name(name);
  const Resources base = ToResources(destinations, interner);
  v1::Snapshot added, replacing;
  added.add_services()->set_name("mine");
  v1::Service* b = replacing.add_services();
  b->set_name("b");
  b->add_hosts("only-mine");
  struct Case {
    const v1::Snapshot* own;
    std::vector<std::string> names;
    std::string b_host;
  };
  for (const Case& c : {Case{&added, {"a", "b", "c", "mine"}, ""}, Case{&replacing, {"a", "b", "c"}, "only-mine"}}) {
    SotwProtocol protocol(registry, "shop/web", /*envoy_types_only=*/false);
    protocol.SetResources(ToResources(*c.own, interner, base));
    SotwProtocol::Request req;
    req.set_type_url(ServiceUrl());
    protocol.Handle(req);
    auto resp = Next(protocol);
    ASSERT_TRUE(resp);
    std::vector<std::string> names;
    std::string b_host;
    for (const auto& any : resp->resources()) {
      v1::Service s;
      ASSERT_TRUE(any.UnpackTo(&s));
      names.push_back(s.name());
      if (s.name() == "b" && s.hosts_size() > 0) b_host = s.hosts(0);
    }
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, c.names);
    EXPECT_EQ(b_host, c.b_host);
  }
}

// A gRPC client's stream: Envoy's types by name, both protocols; a stream with an xDS
// token (envoy_types_only) gets none of meshplug's, which hold scripts and configs.
Resources WithGrpcService(ResourceInterner& interner) {
  v1::Snapshot snapshot;
  auto* s = snapshot.add_services();
  s->set_name("echo.demo");
  s->add_ports()->set_port(50051);
  auto* r = s->add_routes();
  r->mutable_match()->set_port(50051);
  r->add_clusters()->set_cluster("echo.demo|50051");
  r->mutable_clusters(0)->set_weight(100);
  snapshot.add_clusters()->set_name("echo.demo|50051");
  return ToResources(snapshot, interner);
}

TEST(SotwProtocol, ServesEnvoysTypesAndATokenStreamNoneOfMeshplugs) {
  AgentRegistry registry;
  ResourceInterner interner;
  SotwProtocol protocol(registry, "demo/client", /*envoy_types_only=*/true);
  protocol.SetResources(WithGrpcService(interner));
  SotwProtocol::Request services;
  services.set_type_url(ServiceUrl());
  protocol.Handle(services);
  EXPECT_FALSE(Next(protocol));
  SotwProtocol::Request listeners;
  listeners.set_type_url("type.googleapis.com/envoy.config.listener.v3.Listener");
  listeners.add_resource_names("echo.demo:50051");
  protocol.Handle(listeners);
  auto resp = Next(protocol);
  ASSERT_TRUE(resp);
  ASSERT_EQ(resp->resources_size(), 1);
  EXPECT_EQ(resp->resources(0).type_url(), listeners.type_url());
}

TEST(DeltaProtocol, ServesEnvoysTypesBesideMeshplugs) {
  AgentRegistry registry;
  ResourceInterner interner;
  DeltaProtocol protocol(registry, "demo/envoy", /*envoy_types_only=*/false);
  protocol.SetResources(WithGrpcService(interner));
  DeltaProtocol::Request clusters;
  clusters.set_type_url("type.googleapis.com/envoy.config.cluster.v3.Cluster");
  clusters.add_resource_names_subscribe("*");
  protocol.Handle(clusters);
  DeltaProtocol::Request services;
  services.set_type_url(ServiceUrl());
  protocol.Handle(services);
  std::map<std::string, int> sent;
  while (auto resp = Next(protocol)) sent[resp->type_url()] = resp->resources_size();
  EXPECT_EQ(sent[clusters.type_url()], 1);
  EXPECT_EQ(sent[ServiceUrl()], 1);
}

}  // namespace
}  // namespace meshplug::control_plane::xds
