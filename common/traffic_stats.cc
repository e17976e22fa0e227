#include "common/traffic_stats.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <set>
#include <tuple>

#include "common/strings.h"

namespace meshplug::traffic {
namespace {

// Reads `{k="v",...}` at `at` into `labels`; false when malformed.
bool ParseLabels(std::string_view line, size_t& at, std::map<std::string, std::string>& labels) {
  ++at;  // '{'
  while (at < line.size() && line[at] != '}') {
    const size_t eq = line.find("=\"", at);
    if (eq == std::string_view::npos) return false;
    std::string key(line.substr(at, eq - at));
    std::string value;
    at = eq + 2;
    for (; at < line.size() && line[at] != '"'; ++at) {
      if (line[at] == '\\' && at + 1 < line.size()) {
        ++at;
        value += line[at] == 'n' ? '\n' : line[at];
      } else {
        value += line[at];
      }
    }
    if (at >= line.size()) return false;
    ++at;  // closing quote
    if (at < line.size() && line[at] == ',') ++at;
    labels[std::move(key)] = std::move(value);
  }
  if (at >= line.size()) return false;
  ++at;  // '}'
  return true;
}

double Label(const Sample& s, const std::string& name, double fallback) {
  auto it = s.labels.find(name);
  if (it == s.labels.end()) return fallback;
  return it->second == "+Inf" ? INFINITY : std::strtod(it->second.c_str(), nullptr);
}

std::string LabelOf(const Sample& s, const char* name) {
  auto it = s.labels.find(name);
  return it == s.labels.end() ? "" : it->second;
}

// The group a sample belongs to under `by`.
std::vector<std::string> KeyOf(const Sample& s, GroupBy by) {
  switch (by) {
    case GroupBy::kNamespace:
      return {LabelOf(s, "dst_namespace")};
    case GroupBy::kService:
      return {LabelOf(s, "dst_namespace"), LabelOf(s, "dst_service")};
    case GroupBy::kWorkload:
      return {LabelOf(s, "dst_namespace"), LabelOf(s, "dst_workload")};
    case GroupBy::kRoute:
      return {LabelOf(s, "dst_namespace"), LabelOf(s, "dst_service"), LabelOf(s, "route")};
    case GroupBy::kEdge:
      return {LabelOf(s, "src_namespace"), LabelOf(s, "src_workload"), LabelOf(s, "dst_namespace"),
              LabelOf(s, "dst_service")};
  }
  return {};
}

// The sample of `line` when it is a series named exactly `metric` with a finite value.
std::optional<Sample> ParseSeries(std::string_view line, std::string_view metric, const std::string& instance) {
  if (!line.starts_with(metric) || line.size() == metric.size()) return std::nullopt;
  size_t at = metric.size();
  Sample s;
  if (line[at] == '{') {
    if (!ParseLabels(line, at, s.labels)) return std::nullopt;
  } else if (line[at] != ' ') {
    return std::nullopt;  // another metric with this one's name as prefix
  }
  s.value = std::strtod(std::string(line.substr(at)).c_str(), nullptr);
  if (!std::isfinite(s.value)) return std::nullopt;  // NaN or ±Inf counts nothing
  s.labels["instance"] = instance;
  return s;
}

}  // namespace

std::vector<Sample> ParsePrometheusText(std::string_view text, std::string_view metric, const std::string& instance) {
  std::vector<Sample> out;
  for (std::string_view line : Split(text, '\n')) {
    if (auto s = ParseSeries(line, metric, instance)) out.push_back(*std::move(s));
  }
  return out;
}

void AddAgentStats(std::string_view text, const std::string& instance, Golden& out) {
  for (std::string_view line : Split(text, '\n')) {
    if (auto s = ParseSeries(line, kRequests, instance)) {
      out.requests.push_back(*std::move(s));
    } else if (auto b = ParseSeries(line, kLatencyBuckets, instance)) {
      out.buckets.push_back(*std::move(b));
    }
  }
}

absl::StatusOr<std::vector<Sample>> ParseQueryResult(std::string_view json) {
  google::protobuf::Struct answer;
  if (!google::protobuf::util::JsonStringToMessage(std::string(json), &answer).ok()) {
    return absl::InvalidArgumentError("Prometheus's answer is not JSON");
  }
  const auto& f = answer.fields();
  if (!f.contains("status") || f.at("status").string_value() != "success") {
    const std::string error = f.contains("error") ? f.at("error").string_value() : "no status \"success\"";
    return absl::InvalidArgumentError(Cat("Prometheus refused the query: ", error));
  }
  // Not `: Struct().fields()`: both branches are references, so the temporary would not
  // outlive this line.
  static const google::protobuf::Struct kNoData;
  const auto& data = f.contains("data") ? f.at("data").struct_value().fields() : kNoData.fields();
  if (!data.contains("resultType") || data.at("resultType").string_value() != "vector") {
    return absl::InvalidArgumentError("Prometheus's answer is not an instant vector");
  }
  if (!data.contains("result")) return absl::InvalidArgumentError("Prometheus's answer has no result");
  std::vector<Sample> out;
  for (const auto& item : data.at("result").list_value().values()) {
    const auto& r = item.struct_value().fields();
    Sample s;
    if (r.contains("metric")) {
      for (const auto& [k, v] : r.at("metric").struct_value().fields()) s.labels[k] = v.string_value();
    }
    if (!r.contains("value") || r.at("value").list_value().values_size() != 2) {
      return absl::InvalidArgumentError("a Prometheus sample without [time, value]");
    }
    s.value = std::strtod(r.at("value").list_value().values(1).string_value().c_str(), nullptr);
    if (std::isfinite(s.value)) out.push_back(std::move(s));
  }
  return out;
}

std::vector<Sample> Delta(const std::vector<Sample>& before, const std::vector<Sample>& after) {
  std::map<std::map<std::string, std::string>, double> earlier;
  for (const Sample& s : before) earlier[s.labels] = s.value;
  std::vector<Sample> out;
  for (const Sample& s : after) {
    auto it = earlier.find(s.labels);
    // A counter that went down restarted (the agent did): all of it is new.
    const double base = it == earlier.end() || it->second > s.value ? 0 : it->second;
    out.push_back(Sample{s.labels, s.value - base});
  }
  return out;
}

absl::StatusOr<GroupBy> ParseGroupBy(std::string_view kind) {
  if (kind == "namespace" || kind == "ns" || kind == "namespaces") return GroupBy::kNamespace;
  if (kind == "service" || kind == "svc" || kind == "services") return GroupBy::kService;
  if (kind == "workload" || kind == "wl" || kind == "workloads") return GroupBy::kWorkload;
  if (kind == "route" || kind == "routes") return GroupBy::kRoute;
  return absl::InvalidArgumentError(
      Cat("\"", kind, "\" is not namespace, service, workload or route"));
}

double Quantile(double q, std::vector<std::pair<double, double>> buckets) {
  std::sort(buckets.begin(), buckets.end());
  if (buckets.empty() || buckets.back().second <= 0) return -1;
  const double total = buckets.back().second;
  const double rank = q * total;
  double lower = 0, below = 0;
  for (const auto& [bound, count] : buckets) {
    if (count >= rank) {
      // The +Inf bucket: the highest finite bound, as histogram_quantile answers.
      if (std::isinf(bound)) return lower;
      if (count == below) return bound;
      return lower + (bound - lower) * (rank - below) / (count - below);
    }
    lower = bound;
    below = count;
  }
  return lower;
}

std::vector<Row> Aggregate(const std::vector<Sample>& requests, const std::vector<Sample>& buckets, GroupBy by,
                           std::string_view direction, std::string_view ns, std::string_view name) {
  const size_t dst_ns = by == GroupBy::kEdge ? 2 : 0;
  auto wanted = [&](const Sample& s, const std::vector<std::string>& key) {
    return LabelOf(s, "direction") == direction && (ns.empty() || key[dst_ns] == ns) &&
           (name.empty() || (key.size() > 1 && key.back() == name) || (by == GroupBy::kRoute && key[1] == name));
  };
  std::map<std::vector<std::string>, Row> rows;
  for (const Sample& s : requests) {
    std::vector<std::string> key = KeyOf(s, by);
    if (!wanted(s, key)) continue;
    Row& row = rows[key];
    row.key = key;
    row.requests += s.value;
    const double code = Label(s, "code", 0);
    if (code > 0 && code < 400) row.successes += s.value;
  }
  std::map<std::vector<std::string>, std::map<double, double>> histograms;  // key → le → count
  for (const Sample& s : buckets) {
    std::vector<std::string> key = KeyOf(s, by);
    if (!wanted(s, key) || !rows.contains(key)) continue;
    histograms[key][Label(s, "le", INFINITY)] += s.value;
  }
  std::vector<Row> out;
  for (auto& [key, row] : rows) {
    const auto& h = histograms[key];
    const std::vector<std::pair<double, double>> b(h.begin(), h.end());
    row.p50 = Quantile(0.5, b);
    row.p95 = Quantile(0.95, b);
    row.p99 = Quantile(0.99, b);
    out.push_back(row);
  }
  return out;
}

}  // namespace meshplug::traffic
