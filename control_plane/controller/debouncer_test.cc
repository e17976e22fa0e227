#include "control_plane/controller/debouncer.h"

#include <gtest/gtest.h>

namespace meshplug::control_plane::controller {
namespace {

using std::chrono::milliseconds;

TEST(DebouncerTest, DueAfterQuietButNeverLaterThanMaxDelayAfterTheFirstChange) {
  Debouncer d(milliseconds(100), milliseconds(1000));
  const auto start = Debouncer::Clock::time_point() + std::chrono::hours(1);
  d.Changed(start);  // handled at once (the next test): what follows within quiet waits
  d.Reset();
  const auto t0 = start + milliseconds(20);
  EXPECT_FALSE(d.Due());
  d.Changed(t0);
  EXPECT_EQ(*d.Due(), t0 + milliseconds(100));
  d.Changed(t0 + milliseconds(50));
  EXPECT_EQ(*d.Due(), t0 + milliseconds(150)) << "a new change restarts the quiet time";
  EXPECT_FALSE(d.Bursting());
  for (int i = 2; i <= 18; ++i) d.Changed(t0 + milliseconds(50 * i));
  EXPECT_FALSE(d.Bursting()) << "the last change at 900 ms: quiet at 1,000 ms, as max_delay";
  d.Changed(t0 + milliseconds(950));
  EXPECT_EQ(*d.Due(), t0 + milliseconds(1000)) << "a steady stream is published at max_delay";
  EXPECT_TRUE(d.Bursting()) << "changes still coming when it is due";
  d.Reset();
  EXPECT_FALSE(d.Due());
  EXPECT_FALSE(d.Bursting());
}

TEST(DebouncerTest, AChangeAfterAQuietSpellIsDueAtOnce) {
  Debouncer d(milliseconds(100), milliseconds(1000));
  const auto t0 = Debouncer::Clock::time_point() + std::chrono::hours(1);
  d.Changed(t0);
  EXPECT_EQ(*d.Due(), t0) << "the first change of all";
  d.Changed(t0 + milliseconds(1));
  EXPECT_EQ(*d.Due(), t0) << "one that comes before it is handled goes with it";
  EXPECT_FALSE(d.Bursting());
  d.Reset();
  d.Changed(t0 + milliseconds(60));
  EXPECT_EQ(*d.Due(), t0 + milliseconds(160)) << "60 ms after the last: waits for quiet";
  d.Reset();
  d.Changed(t0 + milliseconds(160));
  EXPECT_EQ(*d.Due(), t0 + milliseconds(160)) << "100 ms after the last: due at once";
  d.Reset();
  d.Changed(t0 + milliseconds(400), /*may_lead=*/false);
  EXPECT_EQ(*d.Due(), t0 + milliseconds(500)) << "changes that come in waves wait for quiet";
}

TEST(DebouncerTest, ALeadingBatchThatGrewPastMaxDelayIsABurst) {
  Debouncer d(milliseconds(100), milliseconds(1000));
  const auto t0 = Debouncer::Clock::time_point() + std::chrono::hours(1);
  d.Changed(t0);  // due at once, but the loop is busy and changes keep coming
  for (int i = 1; i <= 20; ++i) d.Changed(t0 + milliseconds(50 * i));
  EXPECT_EQ(*d.Due(), t0);
  EXPECT_TRUE(d.Bursting());
}

}  // namespace
}  // namespace meshplug::control_plane::controller
