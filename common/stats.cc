#include "common/stats.h"

#include <algorithm>
#include <cassert>
#include <sstream>

#include "common/metric_help.h"

namespace meshplug {

void Stats::RenderLabels(const Labels& labels, std::string& out) {
  out.clear();
  if (labels.empty()) return;
  out += '{';
  for (const auto& [key, value] : labels) {
    if (out.size() > 1) out += ',';
    out.append(key).append("=\"");
    for (char c : value) {
      if (c == '\\' || c == '"') out += '\\';
      if (c == '\n') {
        out += "\\n";
      } else {
        out += c;
      }
    }
    out += '"';
  }
  out += '}';
}

const std::string& Stats::RenderedLabels::Of(const Labels& labels) {
  changed_ = !std::equal(labels.begin(), labels.end(), last_.begin(), last_.end(),
                         [](const auto& now, const auto& last) {
                           return now.first == last.first && now.second == last.second;
                         });
  if (changed_) {
    RenderLabels(labels, rendered_);
    last_.resize(labels.size());  // assigned in place: no allocation once the strings have grown
    for (size_t i = 0; i < labels.size(); ++i) {
      last_[i].first.assign(labels[i].first);
      last_[i].second.assign(labels[i].second);
    }
  }
  return rendered_;
}

namespace {

// The labels of the calling thread's current update, kept so that a steady state of
// updates allocates nothing.
std::string& KeyBuffer() {
  thread_local std::string key;
  return key;
}

// `map[key]` without building a std::string when the key is there: a metric at its
// series limit comes here for every update it drops.
template <typename Map>
typename Map::mapped_type& Entry(Map& map, std::string_view key) {
  auto it = map.find(key);
  if (it == map.end()) it = map.try_emplace(std::string(key)).first;
  return it->second;
}

// The series `key` of metric `name` in `family`, created at its zero value when
// `admit(series the metric has here)` allows; nullptr when it does not.
template <typename T, typename Admit>
T* Series(std::map<std::string, std::map<std::string, T, std::less<>>, std::less<>>& family, std::string_view name,
          std::string_view key, Admit admit) {
  auto& metric = Entry(family, name);
  auto series = metric.find(key);
  if (series == metric.end()) {
    if (!admit(metric.size())) return nullptr;
    series = metric.try_emplace(std::string(key)).first;
  }
  return &series->second;
}

// For families kept in one map (gauges, fixed histograms).
bool BelowLimit(size_t series) { return series < Stats::kMaxSeries; }

// The first bucket whose bound is >= `seconds` (lower_bound), searched from the smallest:
// the timings of every request and plugin step fall in the first few.
size_t BucketOf(double seconds) {
  size_t i = 0;
  while (i < Stats::kBuckets.size() && Stats::kBuckets[i] < seconds) ++i;
  return i;
}

}  // namespace

void Stats::FixedHistogram::Observe(double seconds) {
  buckets_[BucketOf(seconds)].fetch_add(1, std::memory_order_relaxed);
  sum_nanos_.fetch_add(static_cast<uint64_t>(std::max(0.0, seconds) * 1e9), std::memory_order_relaxed);
}

void Stats::AddTo(const SeriesValue& series, uint64_t count, double seconds) {
  if (HistogramValue* const* h = std::get_if<HistogramValue*>(&series)) {
    (*h)->Add(seconds);
  } else {
    *std::get<uint64_t*>(series) += count;
  }
}

uint64_t Stats::NewId() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

Stats::Shard& Stats::Local() {
  static std::atomic<size_t> next_thread{0};
  thread_local size_t index = next_thread.fetch_add(1, std::memory_order_relaxed) % kShards;
  return shards_[index];
}

bool Stats::Admit(std::string_view metric, std::string_view labels) {
  std::lock_guard lock(admitted_mu_);
  auto& sets = Entry(admitted_, metric);
  if (sets.contains(labels)) return true;
  if (sets.size() >= kMaxSeries) return false;
  sets.emplace(labels);
  return true;
}

uint64_t* Stats::AddCount(Shard& shard, std::string_view counter, std::string_view labels, uint64_t delta) {
  uint64_t* value = Series(shard.counters, counter, labels, [&](size_t) { return Admit(counter, labels); });
  if (value != nullptr) {
    *value += delta;
  } else {
    ++Entry(shard.dropped, counter);
  }
  return value;
}

void Stats::HistogramValue::Add(double seconds) {
  ++buckets[BucketOf(seconds)];
  sum += seconds;
}

Stats::HistogramValue* Stats::AddSample(Shard& shard, std::string_view histogram, std::string_view labels,
                                        double seconds) {
  HistogramValue* h = Series(shard.histograms, histogram, labels, [&](size_t) { return Admit(histogram, labels); });
  if (h != nullptr) {
    h->Add(seconds);
  } else {
    ++Entry(shard.dropped, histogram);
  }
  return h;
}

void Stats::Count(std::string_view name, const Labels& labels, uint64_t delta) {
  std::string& key = KeyBuffer();
  RenderLabels(labels, key);
  Record({{name, key, delta}});
}

void Stats::SetGauge(std::string_view name, const Labels& labels, int64_t value) {
  std::string& key = KeyBuffer();
  RenderLabels(labels, key);
  std::lock_guard lock(gauges_mu_);
  if (int64_t* gauge = Series(gauges_, name, key, BelowLimit)) *gauge = value;
}

void Stats::Observe(std::string_view name, const Labels& labels, double seconds) {
  std::string& key = KeyBuffer();
  RenderLabels(labels, key);
  Record({{name, key, 0, seconds}});
}

bool Stats::Shard::RecentEvent::Is(std::initializer_list<Update> others) const {
  return std::equal(updates.begin(), updates.end(), others.begin(), others.end(),
                    [](const Series& mine, const Update& u) {
                      return std::holds_alternative<HistogramValue*>(mine.value) == (u.seconds >= 0) &&
                             mine.labels == u.labels && mine.name == u.name;
                    });
}

void Stats::Record(std::initializer_list<Update> updates) {
  Shard& shard = Local();
  std::lock_guard lock(shard.mu);
  RecordLocked(shard, updates);
}

void Stats::Record(std::initializer_list<Update> updates, RecordedSeries& recorded) {
  // Emptied first: if the look-up throws, nothing stale stays to be added to.
  recorded.stats_id_ = 0;
  recorded.series_.clear();
  Shard& shard = Local();
  std::lock_guard lock(shard.mu);
  const Shard::RecentEvent* event = RecordLocked(shard, updates);
  recorded.shard_ = &shard;
  if (event) {
    recorded.stats_id_ = id_;
    for (const auto& series : event->updates) recorded.series_.push_back(series.value);
  }
}

bool Stats::Add(const RecordedSeries& recorded, std::initializer_list<Value> values) {
  Shard& shard = Local();
  if (recorded.stats_id_ != id_ || recorded.shard_ != &shard || recorded.series_.size() != values.size()) return false;
  std::lock_guard lock(shard.mu);
  auto value = values.begin();
  for (const auto& series : recorded.series_) {
    // A count for a counter, seconds for a histogram: the caller's Record gave the kinds.
    assert(std::holds_alternative<HistogramValue*>(series) == (value->seconds >= 0));
    AddTo(series, value->count, value->seconds);
    ++value;
  }
  return true;
}

const Stats::Shard::RecentEvent* Stats::RecordLocked(Shard& shard, std::initializer_list<Update> updates) {
  for (const Shard::RecentEvent& event : shard.recent) {
    if (!event.Is(updates)) continue;
    auto series = event.updates.begin();
    for (const Update& u : updates) AddTo((series++)->value, u.count, u.seconds);
    return &event;
  }
  // Not found: the updates are looked up, and the event takes the oldest slot unless one
  // of them was dropped (an exception half way leaves only the spare half filled).
  Shard::RecentEvent& event = shard.spare;
  bool kept = true;
  event.updates.resize(updates.size());  // assigned in place: no allocation once the strings have grown
  auto series = event.updates.begin();
  for (const Update& u : updates) {
    series->name.assign(u.name);
    series->labels.assign(u.labels);
    if (u.seconds >= 0) {
      HistogramValue* h = AddSample(shard, u.name, u.labels, u.seconds);
      series->value = h;
      kept = kept && h != nullptr;
    } else {
      uint64_t* value = AddCount(shard, u.name, u.labels, u.count);
      series->value = value;
      kept = kept && value != nullptr;
    }
    ++series;
  }
  if (!kept) return nullptr;
  Shard::RecentEvent& slot = shard.recent[shard.next_recent++ % shard.recent.size()];
  std::swap(event, slot);
  return &slot;
}

Stats::FixedHistogram& Stats::Histogram(std::string_view name, const Labels& labels) {
  std::string key;
  RenderLabels(labels, key);
  std::lock_guard lock(fixed_mu_);
  std::unique_ptr<FixedHistogram>* slot = Series(fixed_, name, key, BelowLimit);
  // Past the limit every new label set shares one histogram that is never rendered.
  static FixedHistogram overflow;
  if (slot == nullptr) return overflow;
  if (!*slot) *slot = std::make_unique<FixedHistogram>();
  return **slot;
}

uint64_t Stats::CounterValue(std::string_view name, const Labels& labels) const {
  // Each pair as it appears in a rendered series: `{k="v"` or `,k="v"`, then `,` or `}`.
  std::vector<std::string> wanted;
  for (const auto& pair : labels) {
    std::string one;
    RenderLabels({pair}, one);
    wanted.push_back(one.substr(1, one.size() - 2));
  }
  auto has_all = [&wanted](std::string_view series) {
    for (const std::string& pair : wanted) {
      bool found = false;
      for (size_t at = series.find(pair); at != std::string_view::npos && !found; at = series.find(pair, at + 1)) {
        const char before = series[at - 1], after = series[at + pair.size()];
        found = (before == '{' || before == ',') && (after == ',' || after == '}');
      }
      if (!found) return false;
    }
    return true;
  };
  uint64_t total = 0;
  for (const Shard& shard : shards_) {
    std::lock_guard lock(shard.mu);
    auto family = shard.counters.find(name);
    if (family == shard.counters.end()) continue;
    for (const auto& [series, value] : family->second) {
      if (has_all(series)) total += value;
    }
  }
  return total;
}

std::string Stats::RenderPrometheus() const {
  // Merge the shards, holding each shard's lock only while copying it.
  Family<uint64_t> counters;
  Family<HistogramValue> histograms;
  Family<int64_t> gauges;
  for (const Shard& shard : shards_) {
    std::lock_guard lock(shard.mu);
    for (const auto& [name, series] : shard.counters) {
      auto& merged = counters[name];
      for (const auto& [labels, value] : series) merged[labels] += value;
    }
    for (const auto& [name, series] : shard.histograms) {
      auto& merged = histograms[name];
      for (const auto& [labels, h] : series) {
        HistogramValue& m = merged[labels];
        for (size_t i = 0; i < m.buckets.size(); ++i) m.buckets[i] += h.buckets[i];
        m.sum += h.sum;
      }
    }
    for (const auto& [name, count] : shard.dropped) {
      counters["meshplug_stats_series_dropped_total"]["{metric=\"" + name + "\"}"] += count;
    }
  }
  {
    std::lock_guard lock(fixed_mu_);
    for (const auto& [name, series] : fixed_) {
      auto& merged = histograms[name];
      for (const auto& [labels, h] : series) {
        HistogramValue& m = merged[labels];
        for (size_t i = 0; i < m.buckets.size(); ++i) m.buckets[i] += h->buckets_[i].load(std::memory_order_relaxed);
        m.sum += static_cast<double>(h->sum_nanos_.load(std::memory_order_relaxed)) / 1e9;
      }
    }
  }
  {
    std::lock_guard lock(gauges_mu_);
    gauges = gauges_;
  }
  std::ostringstream out;
  auto head = [&out](const std::string& name, std::string_view type) {
    std::string_view help = MetricHelp(name);
    out << "# HELP " << name << ' ' << (help.empty() ? std::string_view(name) : help) << "\n# TYPE " << name << ' '
        << type << '\n';
  };
  for (const auto& [name, series] : counters) {
    head(name, "counter");
    for (const auto& [labels, value] : series) out << name << labels << " " << value << "\n";
  }
  for (const auto& [name, series] : gauges) {
    head(name, "gauge");
    for (const auto& [labels, value] : series) out << name << labels << " " << value << "\n";
  }
  for (const auto& [name, series] : histograms) {
    head(name, "histogram");
    for (const auto& [labels, h] : series) {
      // `le` joins the series' own labels.
      std::string prefix = labels.empty() ? "{" : labels.substr(0, labels.size() - 1) + ",";
      uint64_t below = 0;  // Prometheus's buckets are cumulative
      for (size_t i = 0; i < kBuckets.size(); ++i) {
        below += h.buckets[i];
        out << name << "_bucket" << prefix << "le=\"" << kBuckets[i] << "\"} " << below << "\n";
      }
      below += h.buckets[kBuckets.size()];
      out << name << "_bucket" << prefix << "le=\"+Inf\"} " << below << "\n";
      out << name << "_sum" << labels << " " << h.sum << "\n";
      out << name << "_count" << labels << " " << below << "\n";
    }
  }
  return out.str();
}

}  // namespace meshplug
