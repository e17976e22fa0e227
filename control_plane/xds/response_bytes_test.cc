#include "control_plane/xds/response_bytes.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "common/xds_types.h"
#include "envoy/service/discovery/v3/discovery.pb.h"

namespace meshplug::control_plane::xds {
namespace {

using envoy::service::discovery::v3::DeltaDiscoveryResponse;
using envoy::service::discovery::v3::DiscoveryResponse;
using google::protobuf::util::MessageDifferencer;

// Services whose encodings have lengths whose varints take one, two and three bytes.
std::vector<ResourcePtr> Services(ResourceInterner& interner) {
  std::vector<ResourcePtr> out;
  for (size_t size : {0, 1, 20, 127, 128, 300, 20000}) {
    v1::Service s;
    s.set_name("svc-" + std::to_string(size));
    if (size > 0) s.add_hosts(std::string(size, 'h'));
    out.push_back(interner.Intern(s.name(), s));
  }
  return out;
}

TEST(ResponseBytes, AStateOfTheWorldResponseParsesAsTheMessageProtobufWouldBuild) {
  ResourceInterner interner;
  DiscoveryResponse head;
  head.set_type_url(xds_types::UrlOf<v1::Service>());
  head.set_version_info("v1");
  head.set_nonce("7");
  head.mutable_control_plane()->set_identifier("meshplug");
  DiscoveryResponse expected = head;
  ResponseBytes bytes;
  for (const ResourcePtr& r : Services(interner)) {
    bytes.AddAny(*r);
    v1::Service s;
    ASSERT_TRUE(s.ParseFromArray(r->Value().data(), static_cast<int>(r->Value().size())));
    expected.add_resources()->PackFrom(s);
  }
  grpc::ByteBuffer buffer;
  std::move(bytes).Finish(head, &buffer);
  DiscoveryResponse got;
  ASSERT_TRUE(ParseFrom(buffer, got));
  EXPECT_TRUE(MessageDifferencer::Equals(got, expected)) << got.DebugString();
}

// A shared layer's resources go out as one slice framed the first time a response asks,
// and parse as their Anys added one by one would.
TEST(ResponseBytes, ALayersResourcesAreFramedOnceAsTheirAnys) {
  ResourceInterner interner;
  v1::Snapshot snapshot;
  for (size_t size : {0, 127, 20000}) {
    v1::Service* s = snapshot.add_services();
    s->set_name("svc-" + std::to_string(size));
    if (size > 0) s->add_hosts(std::string(size, 'h'));
  }
  const auto layer = ToResources(snapshot, interner);
  const std::string& url = xds_types::UrlOf<v1::Service>();
  DiscoveryResponse head;
  head.set_type_url(url);
  ResponseBytes one_by_one, framed;
  layer->ForEach(url, [&](const std::string&, const ResourcePtr& r) { one_by_one.AddAny(*r); });
  framed.AddLayer(*layer, url);
  grpc::ByteBuffer expected_bytes, got_bytes;
  std::move(one_by_one).Finish(head, &expected_bytes);
  std::move(framed).Finish(head, &got_bytes);
  DiscoveryResponse expected, got;
  ASSERT_TRUE(ParseFrom(expected_bytes, expected));
  ASSERT_TRUE(ParseFrom(got_bytes, got));
  EXPECT_EQ(got.resources_size(), 3);
  EXPECT_TRUE(MessageDifferencer::Equals(got, expected)) << got.DebugString();
  // Kept with the layer: not framed again.
  layer->SotwEntries(url, [](const AgentResources::Named&) {
    ADD_FAILURE() << "framed twice";
    return grpc::Slice();
  });
}

TEST(ResponseBytes, ADeltaResponseParsesAsTheMessageProtobufWouldBuild) {
  ResourceInterner interner;
  DeltaDiscoveryResponse head;
  head.set_type_url(xds_types::UrlOf<v1::Service>());
  head.set_system_version_info("v2");
  head.set_nonce("8");
  head.add_removed_resources("gone");
  DeltaDiscoveryResponse expected = head;
  ResponseBytes bytes;
  for (const ResourcePtr& r : Services(interner)) {
    bytes.AddResource(*r);
    auto* res = expected.add_resources();
    res->set_name(r->name);
    res->set_version(r->version);
    ASSERT_TRUE(res->mutable_resource()->ParseFromArray(r->AnyBytes().data(), static_cast<int>(r->AnyBytes().size())));
  }
  grpc::ByteBuffer buffer;
  std::move(bytes).Finish(head, &buffer);
  DeltaDiscoveryResponse got;
  ASSERT_TRUE(ParseFrom(buffer, got));
  EXPECT_TRUE(MessageDifferencer::Equals(got, expected)) << got.DebugString();
  ASSERT_EQ(got.resources_size(), 7);
  EXPECT_EQ(got.resources(6).resource().type_url(), head.type_url());
}

TEST(ResponseBytes, AResponseReferencesTheSharedEncodingsInsteadOfCopyingThem) {
  ResourceInterner interner;
  const std::vector<ResourcePtr> services = Services(interner);
  const EncodedResource& big = *services.back();
  DeltaDiscoveryResponse head;
  head.set_type_url("t");
  ResponseBytes bytes;
  bytes.AddResource(big);
  grpc::ByteBuffer buffer;
  std::move(bytes).Finish(head, &buffer);
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(buffer.Dump(&slices).ok());
  bool referenced = false;
  for (const grpc::Slice& s : slices) referenced = referenced || s.begin() == big.any.begin();
  EXPECT_TRUE(referenced) << "the 20 KB resource was copied into the response";
}

TEST(ResponseBytes, BytesThatAreNotTheMessageDoNotParse) {
  const std::string junk = "\xff\xff\xff";
  grpc::Slice slice(junk.data(), junk.size());
  grpc::ByteBuffer buffer(&slice, 1);
  DiscoveryResponse got;
  EXPECT_FALSE(ParseFrom(buffer, got));
}

}  // namespace
}  // namespace meshplug::control_plane::xds
