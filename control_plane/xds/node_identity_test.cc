// What an agent's node says beyond its Workload: where its /stats is.
#include "control_plane/xds/node_identity.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"

namespace meshplug::control_plane::xds {
namespace {

envoy::config::core::v3::Node WithAdminAddress(const std::string& address) {
  envoy::config::core::v3::Node node;
  (*node.mutable_metadata()->mutable_fields())["admin_address"].set_string_value(address);
  return node;
}

TEST(NodeIdentityTest, AdminAddressIsHostAndPort) {
  EXPECT_EQ(*AdminAddressFromNode(envoy::config::core::v3::Node()), "");
  EXPECT_EQ(*AdminAddressFromNode(WithAdminAddress("10.0.0.7:15000")), "10.0.0.7:15000");
  EXPECT_EQ(*AdminAddressFromNode(WithAdminAddress("[fd00::7]:15000")), "[fd00::7]:15000");
  EXPECT_EQ(*AdminAddressFromNode(WithAdminAddress("web-1.shop.svc:15000")), "web-1.shop.svc:15000");
  for (const char* bad : {"10.0.0.7", ":15000", "10.0.0.7:0", "10.0.0.7:99999", "10.0.0.7:http",
                          "evil/path:15000", "a b:15000"}) {
    const auto got = AdminAddressFromNode(WithAdminAddress(bad));
    ASSERT_FALSE(got.ok()) << bad;
    EXPECT_TRUE(absl::StartsWith(got.status().message(), "node.metadata.admin_address: ")) << got.status().message();
  }
  envoy::config::core::v3::Node number;
  (*number.mutable_metadata()->mutable_fields())["admin_address"].set_number_value(15000);
  EXPECT_EQ(AdminAddressFromNode(number).status().message(),
            "node.metadata.admin_address: must be a string \"host:port\"");
}

}  // namespace
}  // namespace meshplug::control_plane::xds
