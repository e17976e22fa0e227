#include "net/connection_limit.h"

#include <gtest/gtest.h>

#include <vector>

namespace meshplug::net {
namespace {

TEST(ConnectionLimitTest, RefusesBeyondTheLimitAndFreesSlotsAsConnectionsEnd) {
  Stats stats;
  auto limit = std::make_shared<ConnectionLimit>("outbound", 2, &stats);
  std::vector<std::shared_ptr<void>> held{limit->TryAcquire(), limit->TryAcquire()};
  ASSERT_NE(held[0], nullptr);
  ASSERT_NE(held[1], nullptr);
  EXPECT_EQ(limit->TryAcquire(), nullptr);
  EXPECT_EQ(limit->active(), 2u);
  EXPECT_EQ(limit->rejected(), 1u);
  EXPECT_NE(stats.RenderPrometheus().find(R"(meshplug_agent_connections_rejected_total{listener="outbound"} 1)"),
            std::string::npos)
      << stats.RenderPrometheus();

  held.pop_back();
  EXPECT_EQ(limit->active(), 1u);
  EXPECT_NE(limit->TryAcquire(), nullptr);  // taken and released at once
  EXPECT_EQ(limit->active(), 1u);
}

TEST(ConnectionLimitTest, ASlotOutlivesTheListenerThatGaveIt) {
  auto limit = std::make_shared<ConnectionLimit>("admin", 1);
  std::weak_ptr<ConnectionLimit> weak = limit;
  std::shared_ptr<void> slot = limit->TryAcquire();
  limit.reset();
  EXPECT_FALSE(weak.expired());
  slot.reset();
  EXPECT_TRUE(weak.expired());
}

TEST(ConnectionLimitTest, DefaultLeavesRoomForTwoDescriptorsPerConnection) {
  EXPECT_GE(ConnectionLimit::DefaultForProxyListener(), 16u);
}

}  // namespace
}  // namespace meshplug::net
