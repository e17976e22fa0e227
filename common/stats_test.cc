#include "common/stats.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace meshplug {
namespace {

TEST(StatsTest, RendersPrometheusText) {
  Stats stats;
  stats.Count("requests_total", {{"service", "a\"b"}});
  stats.Observe("latency_seconds", {{"service", "a"}}, 0.003);
  std::string text = stats.RenderPrometheus();
  EXPECT_NE(text.find("# TYPE requests_total counter\nrequests_total{service=\"a\\\"b\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("latency_seconds_bucket{service=\"a\",le=\"0.0025\"} 0"), std::string::npos);
  EXPECT_NE(text.find("latency_seconds_bucket{service=\"a\",le=\"0.005\"} 1"), std::string::npos);
  EXPECT_NE(text.find("latency_seconds_count{service=\"a\"} 1"), std::string::npos);
}


// Counting from many threads while /stats renders loses nothing.
TEST(StatsTest, CountsFromManyThreadsWhileRendering) {
  Stats stats;
  std::atomic<bool> stop{false};
  size_t rendered_bytes = 0;  // output before the first count is legitimately empty
  std::thread renderer([&] {
    while (!stop) rendered_bytes += stats.RenderPrometheus().size();
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([&] {
      for (int i = 0; i < 5000; ++i) {
        stats.Count("requests_total", {{"service", "a"}});
        stats.Observe("latency_seconds", {{"service", "a"}}, 0.003);
      }
    });
  }
  for (auto& w : workers) w.join();
  stop = true;
  renderer.join();
  (void)rendered_bytes;
  EXPECT_EQ(stats.CounterValue("requests_total", {{"service", "a"}}), 20000u);
  std::string text = stats.RenderPrometheus();
  EXPECT_NE(text.find("requests_total{service=\"a\"} 20000\n"), std::string::npos) << text;
  EXPECT_NE(text.find("latency_seconds_count{service=\"a\"} 20000\n"), std::string::npos) << text;
  stats.SetGauge("live", {}, 3);
  EXPECT_NE(stats.RenderPrometheus().find("# TYPE live gauge\nlive 3\n"), std::string::npos);
}


}  // namespace
}  // namespace meshplug
