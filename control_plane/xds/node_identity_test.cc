// What an agent's node says beyond its Workload: where its /stats is.
#include "control_plane/xds/node_identity.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"

namespace meshplug::control_plane::xds {
namespace {

envoy::config::core::v3::Node WithAdminAddress(const std::string& address, const std::string& workload = "10.0.0.7") {
  envoy::config::core::v3::Node node;
  (*node.mutable_metadata()->mutable_fields())["admin_address"].set_string_value(address);
  (*node.mutable_metadata()->mutable_fields())["address"].set_string_value(workload);
  return node;
}

TEST(NodeIdentityTest, AdminAddressIsLoopbackOrTheWorkloadsOwn) {
  EXPECT_EQ(*AdminAddressFromNode(envoy::config::core::v3::Node()), "");
  EXPECT_EQ(*AdminAddressFromNode(WithAdminAddress("10.0.0.7:15000")), "10.0.0.7:15000");
  EXPECT_EQ(*AdminAddressFromNode(WithAdminAddress("127.0.0.1:15000")), "127.0.0.1:15000");
  EXPECT_EQ(*AdminAddressFromNode(WithAdminAddress("[fd00::7]:15000", "fd00::7")), "[fd00::7]:15000");
  EXPECT_EQ(*AdminAddressFromNode(WithAdminAddress("[::1]:15000")), "[::1]:15000");
  for (const char* bad : {"10.0.0.7", ":15000", "10.0.0.7:0", "10.0.0.7:99999", "10.0.0.7:http",
                          "web-1.shop.svc:15000", "evil/path:15000", "169.254.169.254:80", "10.0.0.8:15000"}) {
    const auto got = AdminAddressFromNode(WithAdminAddress(bad));
    ASSERT_FALSE(got.ok()) << bad;
    EXPECT_TRUE(absl::StartsWith(got.status().message(), "node.metadata.admin_address: ")) << got.status().message();
  }
  envoy::config::core::v3::Node number;
  (*number.mutable_metadata()->mutable_fields())["admin_address"].set_number_value(15000);
  EXPECT_EQ(AdminAddressFromNode(number).status().message(),
            "node.metadata.admin_address: must be a string \"IP:port\"");
}

}  // namespace
}  // namespace meshplug::control_plane::xds
