#include "common/stats.h"

#include <atomic>
#include <sstream>

namespace meshplug {

std::string Stats::RenderLabels(const Labels& labels) {
  if (labels.empty()) return {};
  std::string out = "{";
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
  return out + "}";
}

namespace {

// The series `key` of metric `name` in `family`, created at its zero value.
template <typename T>
T& Series(std::map<std::string, std::map<std::string, T, std::less<>>, std::less<>>& family,
          std::string_view name, std::string&& key) {
  auto metric = family.find(name);
  if (metric == family.end()) metric = family.try_emplace(std::string(name)).first;
  auto series = metric->second.find(key);
  if (series == metric->second.end()) series = metric->second.try_emplace(std::move(key)).first;
  return series->second;
}

}  // namespace

Stats::Shard& Stats::Local() {
  static std::atomic<size_t> next_thread{0};
  thread_local size_t index = next_thread.fetch_add(1, std::memory_order_relaxed) % kShards;
  return shards_[index];
}

void Stats::Count(std::string_view name, const Labels& labels, uint64_t delta) {
  std::string key = RenderLabels(labels);
  Shard& shard = Local();
  std::lock_guard lock(shard.mu);
  Series(shard.counters, name, std::move(key)) += delta;
}

void Stats::SetGauge(std::string_view name, const Labels& labels, int64_t value) {
  std::string key = RenderLabels(labels);
  std::lock_guard lock(gauges_mu_);
  Series(gauges_, name, std::move(key)) = value;
}

void Stats::Observe(std::string_view name, const Labels& labels, double seconds) {
  std::string key = RenderLabels(labels);
  Shard& shard = Local();
  std::lock_guard lock(shard.mu);
  Histogram& h = Series(shard.histograms, name, std::move(key));
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) ++h.buckets[i];
  }
  ++h.count;
  h.sum += seconds;
}

uint64_t Stats::CounterValue(std::string_view name, const Labels& labels) const {
  std::string key = RenderLabels(labels);
  uint64_t total = 0;
  for (const Shard& shard : shards_) {
    std::lock_guard lock(shard.mu);
    auto family = shard.counters.find(name);
    if (family == shard.counters.end()) continue;
    auto it = family->second.find(key);
    if (it != family->second.end()) total += it->second;
  }
  return total;
}

std::string Stats::RenderPrometheus() const {
  // Merge the shards, holding each shard's lock only while copying it.
  Family<uint64_t> counters;
  Family<Histogram> histograms;
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
        Histogram& m = merged[labels];
        for (size_t i = 0; i < kBuckets.size(); ++i) m.buckets[i] += h.buckets[i];
        m.count += h.count;
        m.sum += h.sum;
      }
    }
  }
  {
    std::lock_guard lock(gauges_mu_);
    gauges = gauges_;
  }
  std::ostringstream out;
  for (const auto& [name, series] : counters) {
    out << "# TYPE " << name << " counter\n";
    for (const auto& [labels, value] : series) out << name << labels << " " << value << "\n";
  }
  for (const auto& [name, series] : gauges) {
    out << "# TYPE " << name << " gauge\n";
    for (const auto& [labels, value] : series) out << name << labels << " " << value << "\n";
  }
  for (const auto& [name, series] : histograms) {
    out << "# TYPE " << name << " histogram\n";
    for (const auto& [labels, h] : series) {
      // `le` joins the series' own labels.
      std::string prefix = labels.empty() ? "{" : labels.substr(0, labels.size() - 1) + ",";
      for (size_t i = 0; i < kBuckets.size(); ++i) {
        out << name << "_bucket" << prefix << "le=\"" << kBuckets[i] << "\"} " << h.buckets[i]
            << "\n";
      }
      out << name << "_bucket" << prefix << "le=\"+Inf\"} " << h.count << "\n";
      out << name << "_sum" << labels << " " << h.sum << "\n";
      out << name << "_count" << labels << " " << h.count << "\n";
    }
  }
  return out.str();
}

}  // namespace meshplug
