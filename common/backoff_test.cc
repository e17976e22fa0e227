#include "common/backoff.h"

#include <gtest/gtest.h>

namespace meshplug {
namespace {

using std::chrono::milliseconds;

TEST(BackoffTest, GrowsExponentiallyWithJitterAndIsBounded) {
  const milliseconds base(100), max(10000);
  EXPECT_EQ(BackoffDelay(0, base, max, 0.0), milliseconds(50));
  EXPECT_EQ(BackoffDelay(0, base, max, 1.0), milliseconds(100));
  EXPECT_EQ(BackoffDelay(3, base, max, 1.0), milliseconds(800));
  EXPECT_EQ(BackoffDelay(3, base, max, 0.0), milliseconds(400));
  for (int attempt : {7, 8, 20, 62, 1000}) {
    EXPECT_LE(BackoffDelay(attempt, base, max, 1.0), max);
    EXPECT_GE(BackoffDelay(attempt, base, max, 0.0), max / 2);
  }
}

}  // namespace
}  // namespace meshplug
