// Which agents are connected, as the leader's orphan scan asks: to this replica or to any
// other that shares its agents through etcd.
#include "control_plane/xds/shared_agent_status.h"

#include <gtest/gtest.h>

#include "common/eventually.h"
#include "control_plane/store/etcd_store.h"
#include "control_plane/testing/fresh_store.h"
#include "integration/harness/etcd_cluster.h"
#include "integration/harness/process.h"

namespace meshplug::control_plane::xds {
namespace {

using Agents = std::set<std::string>;

TEST(SharedAgentStatusTest, AloneTheConnectedAgentsAreThisReplicasOpenStreams) {
  auto store = testing::FreshSqliteStore("shared_agent_status");
  AgentRegistry registry;
  SharedAgentStatus status(*store, registry, "r1");
  registry.Connected("ns/a", "delta", "peer");
  const uint64_t b = registry.Connected("ns/b", "delta", "peer");
  registry.Disconnected("ns/b", b);
  EXPECT_EQ(status.Connected(), Agents{"ns/a"});
}

TEST(SharedAgentStatusTest, AnAgentConnectedToAnyReplicaIsConnected) {
  if (auto why = integration::harness::EtcdCluster::Unavailable(); !why.empty()) GTEST_SKIP() << why;
  integration::harness::EtcdCluster etcd(integration::harness::TempDir("shared_agent_status_etcd"), 1);
  ASSERT_EQ(etcd.error(), "");
  store::EtcdStore::Options options;
  options.endpoints = *store::EtcdStore::ParseUrl(etcd.url());
  auto store = store::EtcdStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();

  AgentRegistry one, two;
  SharedAgentStatus first(**store, one, "r1"), second(**store, two, "r2");
  one.Connected("ns/a", "delta", "peer");  // only on the first
  one.Connected("ns/b", "delta", "peer");  // moved: gone from the second, on the first
  two.Disconnected("ns/b", two.Connected("ns/b", "delta", "peer"));
  two.Disconnected("ns/c", two.Connected("ns/c", "delta", "peer"));  // nowhere
  first.Start("10.0.0.1:1");
  second.Start("10.0.0.2:1");
  std::optional<Agents> seen;
  EXPECT_TRUE(Eventually([&] { return (seen = second.Connected()) == Agents{"ns/a", "ns/b"}; },
                         std::chrono::seconds(10)))
      << (seen ? seen->size() : 0) << " agents";
  // Once the first sees what the second shared (c, disconnected there), c is still not
  // connected for it.
  ASSERT_TRUE(Eventually(
      [&] {
        for (const auto& status : first.List()) {
          if (status.agent() == "ns/c") return true;
        }
        return false;
      },
      std::chrono::seconds(10)));
  EXPECT_EQ(first.Connected(), (Agents{"ns/a", "ns/b"}));

  // An agent that leaves the second is not connected for it at once, though the value it
  // shared (up to a second old) still says so.
  const uint64_t d = two.Connected("ns/d", "delta", "peer");
  ASSERT_TRUE(Eventually([&] { return first.Connected() == Agents{"ns/a", "ns/b", "ns/d"}; },
                         std::chrono::seconds(10)));
  two.Disconnected("ns/d", d);
  EXPECT_EQ(second.Connected(), (Agents{"ns/a", "ns/b"}));
}

}  // namespace
}  // namespace meshplug::control_plane::xds
