#include "common/stats.h"

#include "common/metric_help.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace meshplug {
namespace {

// Whether the Prometheus text has the sample `line` ending a line; a failure shows the text.
::testing::AssertionResult HasLine(const std::string& text, const std::string& line) {
  if (text.find(line + "\n") != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "no line \"" << line << "\" in:\n" << text;
}

TEST(StatsTest, RendersPrometheusText) {
  Stats stats;
  stats.Count("requests_total", {{"service", "a\"b"}});
  stats.Observe("latency_seconds", {{"service", "a"}}, 0.003);
  std::string text = stats.RenderPrometheus();
  EXPECT_NE(text.find("# HELP requests_total requests_total\n# TYPE requests_total counter\nrequests_total{service=\"a\\\"b\"} 1\n"),
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
  EXPECT_TRUE(HasLine(text, "requests_total{service=\"a\"} 20000"));
  EXPECT_TRUE(HasLine(text, "latency_seconds_count{service=\"a\"} 20000"));
  stats.SetGauge("live", {}, 3);
  EXPECT_NE(stats.RenderPrometheus().find("# TYPE live gauge\nlive 3\n"), std::string::npos);
}

// A metric of the catalogue renders with its help text.
TEST(StatsTest, KnownMetricsCarryTheirHelp) {
  Stats stats;
  stats.Count("meshplug_upstream_retries_total", {{"cluster", "c"}});
  EXPECT_NE(stats.RenderPrometheus().find("# HELP meshplug_upstream_retries_total Requests retried, by cluster.\n"),
            std::string::npos);
}

// Fixed histograms render like any other, with sub-millisecond buckets.
TEST(StatsTest, FixedHistogramsRenderCumulativeBuckets) {
  Stats stats;
  Stats::FixedHistogram& h = stats.Histogram("plugin_seconds", {{"plugin", "p"}});
  EXPECT_EQ(&h, &stats.Histogram("plugin_seconds", {{"plugin", "p"}}));
  h.Observe(0.00005);
  h.Observe(0.0003);
  h.Observe(20);
  const std::string text = stats.RenderPrometheus();
  EXPECT_TRUE(HasLine(text, "plugin_seconds_bucket{plugin=\"p\",le=\"0.0001\"} 1"));
  EXPECT_TRUE(HasLine(text, "plugin_seconds_bucket{plugin=\"p\",le=\"0.0005\"} 2"));
  EXPECT_TRUE(HasLine(text, "plugin_seconds_bucket{plugin=\"p\",le=\"10\"} 2"));
  EXPECT_TRUE(HasLine(text, "plugin_seconds_bucket{plugin=\"p\",le=\"+Inf\"} 3"));
  EXPECT_TRUE(HasLine(text, "plugin_seconds_count{plugin=\"p\"} 3"));
}

// Prometheus buckets are "less than or equal": a value on a bound counts in that bucket.
TEST(StatsTest, AValueOnABucketBoundCountsInThatBucket) {
  Stats stats;
  Stats::FixedHistogram& h = stats.Histogram("bounds_seconds", {});
  for (double bound : Stats::kBuckets) h.Observe(bound);
  h.Observe(0);
  const std::string text = stats.RenderPrometheus();
  // Cumulative: 0 and the first bound in the first bucket, one more per bound after it.
  for (const auto& [le, count] : {std::pair{"0.0001", 2}, {"0.00025", 3}, {"10", 17}, {"+Inf", 17}}) {
    EXPECT_TRUE(HasLine(text, std::string("bounds_seconds_bucket{le=\"") + le + "\"} " + std::to_string(count)));
  }
}

// Record: one event's several updates, with labels rendered once by the caller.
TEST(StatsTest, RecordUpdatesCountersAndHistogramsAtOnce) {
  Stats stats;
  std::string labels;
  Stats::RenderLabels({{"route", "r"}}, labels);
  stats.Record({{"requests_total", labels, 1}, {"bytes_total", labels, 42}, {"seconds", labels, 0, 0.0002}});
  const std::string text = stats.RenderPrometheus();
  EXPECT_EQ(stats.CounterValue("requests_total", {{"route", "r"}}), 1u);
  EXPECT_EQ(stats.CounterValue("bytes_total", {{"route", "r"}}), 42u);
  EXPECT_TRUE(HasLine(text, "seconds_bucket{route=\"r\",le=\"0.00025\"} 1"));
  EXPECT_TRUE(HasLine(text, "seconds_count{route=\"r\"} 1"));
}

// Events (Record's calls) that repeat, as a thread's requests do, whether fewer than the
// shard remembers (2 label sets: 6 events, their series reused) or more (20: looked up
// again): each update lands in its own series, also a counter and a histogram of one name
// and labels.
TEST(StatsTest, RepeatedEventsEachKeepTheirOwnCounts) {
  for (size_t label_sets : {2, 20}) {
    Stats stats;
    std::vector<std::string> labels(label_sets);
    for (size_t i = 0; i < label_sets; ++i) Stats::RenderLabels({{"route", "r" + std::to_string(i)}}, labels[i]);
    for (int round = 0; round < 50; ++round) {
      for (size_t i = 0; i < label_sets; ++i) {
        stats.Record({{"a_total", labels[i], i + 1}, {"b_total", labels[i], 1}, {"a_seconds", labels[i], 0, 0.5}});
        stats.Record({{"x", labels[i], 2}});
        stats.Record({{"x", labels[i], 0, 0.25}});
      }
    }
    const std::string text = stats.RenderPrometheus();
    for (size_t i = 0; i < label_sets; ++i) {
      const std::string route = "r" + std::to_string(i);
      EXPECT_EQ(stats.CounterValue("a_total", {{"route", route}}), 50 * (i + 1)) << route;
      EXPECT_EQ(stats.CounterValue("b_total", {{"route", route}}), 50u) << route;
      EXPECT_EQ(stats.CounterValue("x", {{"route", route}}), 100u) << route;
      EXPECT_TRUE(HasLine(text, "a_seconds_count{route=\"" + route + "\"} 50"));
      EXPECT_TRUE(HasLine(text, "x_bucket{route=\"" + route + "\",le=\"0.25\"} 50"));
    }
  }
}

// An event recorded once and added to through its RecordedSeries lands where recording it
// every time would.
TEST(StatsTest, AddingToRecordedSeriesCountsAsRecording) {
  Stats recorded_stats, plain_stats;
  std::string labels;
  Stats::RenderLabels({{"route", "r"}}, labels);
  Stats::RecordedSeries series;
  recorded_stats.Record({{"requests_total", labels, 1}, {"seconds", labels, 0, 0.0002}, {"bytes_total", labels, 7}},
                        series);
  plain_stats.Record({{"requests_total", labels, 1}, {"seconds", labels, 0, 0.0002}, {"bytes_total", labels, 7}});
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(recorded_stats.Add(series, {{1}, {0, 0.3}, {5}}));
    plain_stats.Record({{"requests_total", labels, 1}, {"seconds", labels, 0, 0.3}, {"bytes_total", labels, 5}});
  }
  EXPECT_EQ(recorded_stats.CounterValue("requests_total", {{"route", "r"}}), 4u);
  EXPECT_EQ(recorded_stats.CounterValue("bytes_total", {{"route", "r"}}), 22u);
  EXPECT_EQ(recorded_stats.RenderPrometheus(), plain_stats.RenderPrometheus());
}

// Add refuses series it cannot update: never recorded, recorded by another Stats (also
// one made where a destroyed one was) or with a dropped update, or another number of
// values.
TEST(StatsTest, AddRefusesSeriesItDidNotRecord) {
  std::string labels;
  Stats::RenderLabels({{"route", "r"}}, labels);
  auto stats = std::make_unique<Stats>();
  Stats::RecordedSeries series;
  EXPECT_FALSE(stats->Add(series, {{1}}));
  stats->Record({{"requests_total", labels, 1}}, series);
  EXPECT_FALSE(stats->Add(series, {{1}, {1}}));
  Stats other;
  EXPECT_FALSE(other.Add(series, {{1}}));
  EXPECT_EQ(stats->CounterValue("requests_total", {}), 1u);
  EXPECT_TRUE(stats->Add(series, {{1}}));
  EXPECT_EQ(stats->CounterValue("requests_total", {}), 2u);
  stats = std::make_unique<Stats>();
  EXPECT_FALSE(stats->Add(series, {{1}}));
  EXPECT_EQ(stats->CounterValue("requests_total", {}), 0u);
  for (size_t i = 0; i < Stats::kMaxSeries; ++i) stats->Count("paths_total", {{"path", std::to_string(i)}});
  stats->Record({{"paths_total", labels, 1}, {"ok_total", labels, 1}}, series);
  EXPECT_FALSE(stats->Add(series, {{1}, {1}}));
  EXPECT_EQ(stats->CounterValue("ok_total", {}), 1u);
}

// Prometheus's text format escapes a label value's backslash, double quote and newline.
TEST(StatsTest, LabelValuesAreEscaped) {
  std::string labels;
  Stats::RenderLabels({{"a", "plain"}, {"b", "x\\y\"z\nw"}, {"c", "\"\""}, {"d", ""}}, labels);
  EXPECT_EQ(labels, R"({a="plain",b="x\\y\"z\nw",c="\"\"",d=""})");
}

// The cache renders what RenderLabels renders, whatever changed since the last labels:
// a value, a key, the count, or nothing (the views may point at new memory each time);
// changed() tells whether anything did.
TEST(StatsTest, RenderedLabelsAreRenderLabelsWhateverChanged) {
  Stats::RenderedLabels rendered;
  std::vector<Stats::Labels> sequence = {
      {},
      {{"a", "1"}, {"route", "r"}},
      {{"a", "1"}, {"route", "r"}},
      {{"a", "2"}, {"route", "r"}},
      {{"b", "2"}, {"route", "r"}},
      {{"b", "2"}},
      {{"b", "2"}, {"route", "with \"quote\" and \\"}},
      {},
  };
  std::vector<std::string> owned_before;  // a new cache holds no labels
  for (const Stats::Labels& labels : sequence) {
    // Copies in fresh storage, so equal labels never share the previous call's memory.
    std::vector<std::string> owned;
    for (const auto& [k, v] : labels) owned.push_back(std::string(k)), owned.push_back(std::string(v));
    Stats::Labels fresh;
    for (size_t i = 0; i < owned.size(); i += 2) fresh.emplace_back(owned[i], owned[i + 1]);
    std::string expected;
    Stats::RenderLabels(fresh, expected);
    EXPECT_EQ(rendered.Of(fresh), expected);
    EXPECT_EQ(rendered.changed(), owned != owned_before) << expected;
    owned_before = owned;
  }
}

// A metric keeps at most kMaxSeries label sets; the rest are counted, not kept.
TEST(StatsTest, SeriesPerMetricAreBounded) {
  Stats stats;
  for (size_t i = 0; i < Stats::kMaxSeries + 5; ++i) stats.Count("paths_total", {{"path", std::to_string(i)}});
  EXPECT_EQ(stats.CounterValue("paths_total", {{"path", "0"}}), 1u);
  EXPECT_EQ(stats.CounterValue("paths_total", {{"path", std::to_string(Stats::kMaxSeries)}}), 0u);
  EXPECT_NE(stats.RenderPrometheus().find("meshplug_stats_series_dropped_total{metric=\"paths_total\"} 5\n"),
            std::string::npos);
  // An event with an update past the limit: that update is dropped each time, the others count.
  std::string labels;
  Stats::RenderLabels({{"path", "new"}}, labels);
  for (int i = 0; i < 3; ++i) stats.Record({{"paths_total", labels, 1}, {"ok_total", labels, 1}});
  EXPECT_EQ(stats.CounterValue("ok_total", {{"path", "new"}}), 3u);
  EXPECT_EQ(stats.CounterValue("paths_total", {{"path", "new"}}), 0u);
  EXPECT_NE(stats.RenderPrometheus().find("meshplug_stats_series_dropped_total{metric=\"paths_total\"} 8\n"),
            std::string::npos);
}


}  // namespace
}  // namespace meshplug
