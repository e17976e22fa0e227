// Counters, gauges and latency histograms, rendered in the Prometheus text format.
// Thread-safe; one instance lives as long as the agent, across chain set swaps.
//
// Counters and histograms are sharded: each thread updates its own shard (its own mutex,
// uncontended while there are no more threads than shards), so request threads do not
// serialize on one lock. Rendering copies one shard at a time under that shard's lock,
// then merges and formats with no lock held. Gauges, set rarely, keep one mutex.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace meshplug {

class Stats {
 public:
  using Labels = std::vector<std::pair<std::string_view, std::string_view>>;

  void Count(std::string_view name, const Labels& labels, uint64_t delta = 1);
  void SetGauge(std::string_view name, const Labels& labels, int64_t value);
  void Observe(std::string_view name, const Labels& labels, double seconds);

  // 0 when never counted.
  uint64_t CounterValue(std::string_view name, const Labels& labels) const;
  std::string RenderPrometheus() const;

 private:
  // Upper bounds in seconds; +Inf is implicit.
  static constexpr std::array<double, 12> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                     0.1,   0.25,   0.5,   1,    2.5,   10};
  struct Histogram {
    std::array<uint64_t, kBuckets.size()> buckets{};
    uint64_t count = 0;
    double sum = 0;
  };
  // Metric name → rendered label set ("{a=\"b\"}") → value.
  template <typename T>
  using Family = std::map<std::string, std::map<std::string, T, std::less<>>, std::less<>>;

  struct Shard {
    mutable std::mutex mu;
    Family<uint64_t> counters;
    Family<Histogram> histograms;
  };
  static constexpr size_t kShards = 16;

  static std::string RenderLabels(const Labels& labels);
  // The calling thread's shard.
  Shard& Local();

  std::array<Shard, kShards> shards_;
  mutable std::mutex gauges_mu_;
  Family<int64_t> gauges_;
};

}  // namespace meshplug
