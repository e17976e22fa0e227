#include "control_plane/xds/stream_protocol.h"

#include <gtest/gtest.h>

#include "common/xds_types.h"

namespace meshplug::control_plane::xds {
namespace {

const std::string& ServiceUrl() { return xds_types::UrlOf<v1::Service>(); }

// Resources with services named `names`, and a new version each time they change.
Resources WithServices(ResourceInterner& interner, const std::vector<std::string>& names) {
  v1::Snapshot snapshot;
  for (const std::string& name : names) snapshot.add_services()->set_name(name);
  return ToResources(snapshot, interner);
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
  DeltaProtocol protocol(registry, "shop/web");
  protocol.SetResources(WithServices(interner, {"a"}));
  DeltaProtocol::Request req;
  req.set_type_url(ServiceUrl());
  for (size_t i = 0; i < kMaxSubscribedNames + 500; ++i) req.add_resource_names_subscribe("missing-" + std::to_string(i));
  protocol.Handle(req);
  auto resp = protocol.NextResponse();
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
  SotwProtocol protocol(registry, "shop/web");
  protocol.SetResources(WithServices(interner, names));
  SotwProtocol::Request req;
  req.set_type_url(ServiceUrl());
  for (const std::string& name : names) req.add_resource_names(name);
  protocol.Handle(req);
  auto resp = protocol.NextResponse();
  ASSERT_TRUE(resp);
  EXPECT_EQ(static_cast<size_t>(resp->resources_size()), kMaxSubscribedNames);
}

// An ACK names its response by nonce; it counts for any of the recent responses, also
// after nonces went past two digits.
TEST(DeltaProtocol, AckOfARecentResponseIsRecorded) {
  AgentRegistry registry;
  ResourceInterner interner;
  registry.Connected("shop/web", "delta", "test");
  DeltaProtocol protocol(registry, "shop/web");
  DeltaProtocol::Request subscribe;
  subscribe.set_type_url(ServiceUrl());
  protocol.Handle(subscribe);
  std::vector<DeltaProtocol::Response> sent;
  for (int i = 0; i < 20; ++i) {
    protocol.SetResources(WithServices(interner, {"v" + std::to_string(i)}));
    auto resp = protocol.NextResponse();
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

}  // namespace
}  // namespace meshplug::control_plane::xds
