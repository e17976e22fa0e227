// Counters, gauges and latency histograms, rendered in the Prometheus text format with
// each metric's HELP (common/metric_help.h). Thread-safe; one instance lives as long as
// the process, across chain set swaps.
//
// Counters and histograms are sharded: each thread updates its own shard (its own mutex,
// uncontended while there are no more threads than shards), so request threads do not
// serialize on one lock. Rendering copies one shard at a time under that shard's lock,
// then merges and formats with no lock held. Gauges, set rarely, keep one mutex.
//
// Cardinality is bounded: a metric keeps at most kMaxSeries label sets, whatever the
// shards; updates of others are dropped and counted in meshplug_stats_series_dropped_total.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace meshplug {

class Stats {
  struct HistogramValue;  // declared below
  using SeriesValue = std::variant<uint64_t*, HistogramValue*>;  // a counter's or a histogram's

 public:
  using Labels = std::vector<std::pair<std::string_view, std::string_view>>;
  static constexpr size_t kMaxSeries = 2000;

  // Upper bounds in seconds, +Inf implicit: 100 µs steps for one hop through an agent, up
  // to 10 s for slow upstreams.
  static constexpr std::array<double, 16> kBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                     0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,     10};

  // A histogram whose labels are fixed when it is made: observing is three relaxed atomic
  // adds and no lookup, for timings every request records (per plugin).
  class FixedHistogram {
   public:
    void Observe(double seconds);

   private:
    friend class Stats;
    std::array<std::atomic<uint64_t>, kBuckets.size() + 1> buckets_{};  // per bucket; the last is +Inf
    std::atomic<uint64_t> sum_nanos_{0};
  };

  void Count(std::string_view name, const Labels& labels, uint64_t delta = 1);
  void SetGauge(std::string_view name, const Labels& labels, int64_t value);
  void Observe(std::string_view name, const Labels& labels, double seconds);
  // One update of an event; `labels` rendered by the caller (RenderLabels).
  struct Update {
    std::string_view name, labels;
    uint64_t count = 0;   // added to counter `name`, unless `seconds` is set
    double seconds = -1;  // observed into histogram `name` when not negative
  };
  // Several updates of one event under one lock, for the per-request path.
  void Record(std::initializer_list<Update> updates);

  // What a caller that records the same event again and again keeps (the golden metrics:
  // the same route and peers, request after request): the series its last Record updated,
  // so that Add updates them again without comparing names and labels. Valid with the
  // Stats that made it, on the calling thread's shard.
  class RecordedSeries {
   private:
    friend class Stats;
    uint64_t stats_id_ = 0;  // of the Stats that filled it; 0: empty (not recorded, or an update dropped)
    const void* shard_ = nullptr;
    std::vector<SeriesValue> series_;  // in the updates' order
  };
  // Record, keeping in `recorded` what it updated.
  void Record(std::initializer_list<Update> updates, RecordedSeries& recorded);
  // New values for the updates of the Record that filled `recorded`, in their order and of
  // their kinds: a count, or seconds for a histogram. False, with nothing added, when
  // `recorded` is empty, another Stats' or another shard's, or the number of values
  // differs: Record then.
  struct Value {
    uint64_t count = 0;
    double seconds = -1;
  };
  bool Add(const RecordedSeries& recorded, std::initializer_list<Value> values);

  // The labels as Prometheus writes them ({a="b",c="d"}), into `out` (cleared first).
  static void RenderLabels(const Labels& labels, std::string& out);
  // RenderLabels for a caller whose labels mostly repeat (the same route and peers request
  // after request): it renders only when they differ from the last ones, which it keeps.
  class RenderedLabels {
   public:
    const std::string& Of(const Labels& labels);
    // Whether the last Of rendered anew (its labels differed from the ones before).
    bool changed() const { return changed_; }

   private:
    std::vector<std::pair<std::string, std::string>> last_;
    std::string rendered_;  // of last_
    bool changed_ = true;
  };
  // The same histogram for the same name and labels; it lives as long as this Stats.
  FixedHistogram& Histogram(std::string_view name, const Labels& labels);

  // The sum of the series of `name` whose labels include every one of `labels` (all of
  // them for none); 0 when never counted.
  uint64_t CounterValue(std::string_view name, const Labels& labels) const;
  std::string RenderPrometheus() const;

 private:
  struct HistogramValue {
    std::array<uint64_t, kBuckets.size() + 1> buckets{};  // per bucket, the last +Inf; cumulated when rendered
    double sum = 0;

    void Add(double seconds);
  };
  // Metric name → rendered label set ("{a=\"b\"}") → value.
  template <typename T>
  using Family = std::map<std::string, std::map<std::string, T, std::less<>>, std::less<>>;

  struct Shard {
    mutable std::mutex mu;
    Family<uint64_t> counters;
    Family<HistogramValue> histograms;
    std::map<std::string, uint64_t, std::less<>> dropped;  // by metric
    // The series of the shard's latest events (Record's calls), looked at before the maps:
    // a thread records the same few events (the same routes and peers) request after
    // request, and finding a series in the maps compares its long label string at every
    // level. std::map nodes never move and no series is removed, so the pointers stay
    // valid. An event with a dropped update is not kept.
    struct RecentEvent {
      struct Series {
        std::string name, labels;
        SeriesValue value;
      };
      std::vector<Series> updates;  // in order; empty: unused

      // Whether `updates` are this event's, in its order.
      bool Is(std::initializer_list<Update> updates) const;
    };
    std::array<RecentEvent, 8> recent;
    size_t next_recent = 0;  // replaced next
    // Where a missed event is filled; swapped into `recent` only if it is kept, so a
    // dropped one pushes nothing out (and its strings keep their room for the next).
    RecentEvent spare;
  };
  static constexpr size_t kShards = 16;

  // The calling thread's shard.
  Shard& Local();
  // Record under the shard's lock: the event it updated (in shard.recent), null when an
  // update was dropped.
  const Shard::RecentEvent* RecordLocked(Shard& shard, std::initializer_list<Update> updates);
  // Adds `count` to a counter, or observes `seconds` in a histogram.
  static void AddTo(const SeriesValue& series, uint64_t count, double seconds);
  // Under the shard's lock; the series updated, null when the update was dropped.
  uint64_t* AddCount(Shard& shard, std::string_view counter, std::string_view labels, uint64_t delta);
  HistogramValue* AddSample(Shard& shard, std::string_view histogram, std::string_view labels, double seconds);
  // Whether `metric` may have the label set `labels` (it has it, or fewer than kMaxSeries):
  // asked when a shard sees a label set for the first time.
  bool Admit(std::string_view metric, std::string_view labels);

  // A RecordedSeries' check that it is this Stats': never the id of another, even one
  // made where a destroyed one was.
  static uint64_t NewId();
  const uint64_t id_ = NewId();
  std::array<Shard, kShards> shards_;
  mutable std::mutex gauges_mu_;
  Family<int64_t> gauges_;
  mutable std::mutex fixed_mu_;
  Family<std::unique_ptr<FixedHistogram>> fixed_;
  std::mutex admitted_mu_;
  std::map<std::string, std::set<std::string, std::less<>>, std::less<>> admitted_;  // metric → label sets
};

}  // namespace meshplug
