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

TEST(BackoffTest, AClientsDelaysDoubleUntilTheCapAndStartOverAfterASuccess) {
  Backoff backoff(milliseconds(100), milliseconds(1000), 7);
  const milliseconds lows[] = {milliseconds(50), milliseconds(100), milliseconds(200), milliseconds(400),
                               milliseconds(500), milliseconds(500)};
  for (const milliseconds low : lows) {
    const milliseconds d = backoff.Next();
    EXPECT_GE(d, low);
    EXPECT_LE(d, 2 * low);
  }
  backoff.Reset();
  EXPECT_LE(backoff.Next(), milliseconds(100));
}

}  // namespace
}  // namespace meshplug
