#include "plugins/builtin/stats.h"

#include <sstream>

namespace meshplug::builtin {

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

void Stats::Count(std::string_view name, const Labels& labels, uint64_t delta) {
  std::string key = RenderLabels(labels);
  std::lock_guard lock(mu_);
  counters_[std::string(name)][key] += delta;
}

void Stats::SetGauge(std::string_view name, const Labels& labels, int64_t value) {
  std::string key = RenderLabels(labels);
  std::lock_guard lock(mu_);
  gauges_[std::string(name)][key] = value;
}

void Stats::Observe(std::string_view name, const Labels& labels, double seconds) {
  std::string key = RenderLabels(labels);
  std::lock_guard lock(mu_);
  Histogram& h = histograms_[std::string(name)][key];
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) ++h.buckets[i];
  }
  ++h.count;
  h.sum += seconds;
}

uint64_t Stats::CounterValue(std::string_view name, const Labels& labels) const {
  std::lock_guard lock(mu_);
  auto family = counters_.find(name);
  if (family == counters_.end()) return 0;
  auto it = family->second.find(RenderLabels(labels));
  return it == family->second.end() ? 0 : it->second;
}

std::string Stats::RenderPrometheus() const {
  std::lock_guard lock(mu_);
  std::ostringstream out;
  for (const auto& [name, series] : counters_) {
    out << "# TYPE " << name << " counter\n";
    for (const auto& [labels, value] : series) out << name << labels << " " << value << "\n";
  }
  for (const auto& [name, series] : gauges_) {
    out << "# TYPE " << name << " gauge\n";
    for (const auto& [labels, value] : series) out << name << labels << " " << value << "\n";
  }
  for (const auto& [name, series] : histograms_) {
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

}  // namespace meshplug::builtin
