// The golden metrics of namespaces, services, workloads, routes or edges (who calls whom)
// as request counts, success rate and latency quantiles, from the agents' own /stats or
// from Prometheus: both give samples of the same series, and one aggregation serves
// `meshctl stat` and the control plane's dashboard.
//
// A success is a response with a status below 400; a 4xx or 5xx (a 401 from a token
// verifier included) and no response at all are failures.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace meshplug::traffic {

inline constexpr std::string_view kRequests = "meshplug_http_requests_total";
inline constexpr std::string_view kLatencyBuckets = "meshplug_http_request_duration_seconds_bucket";

struct Sample {
  std::map<std::string, std::string> labels;
  double value = 0;
};

// The samples of the series named exactly `metric` in Prometheus text; each also gets the
// label `instance` = `instance` so that samples from different agents stay apart.
std::vector<Sample> ParsePrometheusText(std::string_view text, std::string_view metric, const std::string& instance);

// Both series the aggregation reads, from any number of agents.
struct Golden {
  std::vector<Sample> requests;  // kRequests
  std::vector<Sample> buckets;   // kLatencyBuckets
};
// Adds both series of one agent's /stats text to `out`, in one pass.
void AddAgentStats(std::string_view text, const std::string& instance, Golden& out);

// The samples of a Prometheus /api/v1/query answer (an instant vector), or why it is not one.
absl::StatusOr<std::vector<Sample>> ParseQueryResult(std::string_view json);

// `after` minus `before`, series by series (a series missing before counts from zero).
std::vector<Sample> Delta(const std::vector<Sample>& before, const std::vector<Sample>& after);

// kEdge: a calling workload and the service it calls (src namespace and workload, dst
// namespace and service); the others group by the destination.
enum class GroupBy { kNamespace, kService, kWorkload, kRoute, kEdge };
// "namespace"/"ns", "service"/"svc", "workload"/"wl", "route"; an error lists them.
absl::StatusOr<GroupBy> ParseGroupBy(std::string_view kind);

struct Row {
  std::vector<std::string> key;  // namespace, then the name(s) the grouping adds (kEdge: four)
  double requests = 0;
  double successes = 0;
  double p50 = -1, p95 = -1, p99 = -1;  // seconds; -1 without data
};

// Samples with direction=`direction` grouped by `by`; `ns` ("" for all) keeps one
// (destination) namespace and `name` ("" for all) one service, workload or route.
std::vector<Row> Aggregate(const std::vector<Sample>& requests, const std::vector<Sample>& buckets, GroupBy by,
                           std::string_view direction, std::string_view ns, std::string_view name);

// The q-quantile of a histogram given as (upper bound, cumulative count) pairs, as
// Prometheus's histogram_quantile computes it: linear within the bucket; -1 when empty.
double Quantile(double q, std::vector<std::pair<double, double>> buckets);

}  // namespace meshplug::traffic
