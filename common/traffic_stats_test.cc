// The golden metrics' arithmetic: parsing both sources, windows, grouping, success and
// quantiles.
#include "common/traffic_stats.h"

#include <gtest/gtest.h>

namespace meshplug::traffic {
namespace {

constexpr std::string_view kAgentText =
    "# HELP meshplug_http_requests_total HTTP requests finished.\n"
    "# TYPE meshplug_http_requests_total counter\n"
    "meshplug_http_requests_total{direction=\"inbound\",dst_namespace=\"httpbin\",dst_service=\"httpbin\","
    "dst_workload=\"httpbin-1\",route=\"default\",code=\"200\"} 6\n"
    "meshplug_http_requests_total{direction=\"inbound\",dst_namespace=\"httpbin\",dst_service=\"httpbin\","
    "dst_workload=\"httpbin-1\",route=\"default\",code=\"401\"} 3\n"
    "meshplug_http_requests_total{direction=\"inbound\",dst_namespace=\"httpbin\",dst_service=\"httpbin\","
    "dst_workload=\"httpbin-1\",route=\"default\",code=\"0\"} 1\n"
    "meshplug_http_requests_total{direction=\"outbound\",dst_namespace=\"httpbin\",dst_service=\"httpbin\","
    "dst_workload=\"httpbin-1\",route=\"default\",code=\"200\"} 100\n"
    "meshplug_http_requests_totally_other 5\n"
    "meshplug_http_request_duration_seconds_bucket{direction=\"inbound\",dst_namespace=\"httpbin\","
    "dst_service=\"httpbin\",dst_workload=\"httpbin-1\",route=\"default\",le=\"0.001\"} 4\n"
    "meshplug_http_request_duration_seconds_bucket{direction=\"inbound\",dst_namespace=\"httpbin\","
    "dst_service=\"httpbin\",dst_workload=\"httpbin-1\",route=\"default\",le=\"0.01\"} 9\n"
    "meshplug_http_request_duration_seconds_bucket{direction=\"inbound\",dst_namespace=\"httpbin\","
    "dst_service=\"httpbin\",dst_workload=\"httpbin-1\",route=\"default\",le=\"+Inf\"} 10\n";

TEST(StatTest, AgentsTextGivesCountsSuccessAndQuantiles) {
  const auto requests = ParsePrometheusText(kAgentText, kRequests, "httpbin/httpbin-1");
  ASSERT_EQ(requests.size(), 4u);
  EXPECT_EQ(requests[0].labels.at("instance"), "httpbin/httpbin-1");
  const auto buckets = ParsePrometheusText(kAgentText, kLatencyBuckets, "httpbin/httpbin-1");
  Golden both;
  AddAgentStats(kAgentText, "httpbin/httpbin-1", both);
  EXPECT_EQ(both.requests.size(), requests.size());
  EXPECT_EQ(both.buckets.size(), buckets.size());
  EXPECT_TRUE(ParsePrometheusText("meshplug_http_requests_total{code=\"200\"} NaN\n", kRequests, "a").empty());
  const auto rows = Aggregate(requests, buckets, GroupBy::kService, "inbound", "", "");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].key, (std::vector<std::string>{"httpbin", "httpbin"}));
  EXPECT_EQ(rows[0].requests, 10);
  EXPECT_EQ(rows[0].successes, 6);  // a 401 and no response are failures
  EXPECT_DOUBLE_EQ(rows[0].p50, 0.001 + (0.01 - 0.001) * (5 - 4) / (9 - 4.0));
  EXPECT_DOUBLE_EQ(rows[0].p99, 0.01);  // in +Inf: the highest finite bound
  EXPECT_EQ(Aggregate(requests, buckets, GroupBy::kService, "outbound", "", "")[0].requests, 100);
  EXPECT_TRUE(Aggregate(requests, buckets, GroupBy::kService, "inbound", "shop", "").empty());
  EXPECT_TRUE(Aggregate(requests, buckets, GroupBy::kService, "inbound", "", "other").empty());
  EXPECT_EQ(Aggregate(requests, buckets, GroupBy::kWorkload, "inbound", "httpbin", "httpbin-1").size(), 1u);
  EXPECT_EQ(Aggregate(requests, buckets, GroupBy::kRoute, "inbound", "", "httpbin")[0].key.back(), "default");
  // Edges: who called whom, from the callers' side.
  const auto edges = Aggregate(requests, buckets, GroupBy::kEdge, "outbound", "httpbin", "");
  ASSERT_EQ(edges.size(), 1u);
  EXPECT_EQ(edges[0].key, (std::vector<std::string>{"", "", "httpbin", "httpbin"}));
}

TEST(StatTest, WindowsSubtractAndPrometheusAnswersParse) {
  const auto before = ParsePrometheusText(kAgentText, kRequests, "a");
  auto after = before;
  after[0].value += 4;
  after[1].value = 1;  // went down: the agent restarted, all of it is new
  const auto delta = Delta(before, after);
  EXPECT_EQ(delta[0].value, 4);
  EXPECT_EQ(delta[1].value, 1);
  EXPECT_EQ(delta[2].value, 0);

  const auto parsed = ParseQueryResult(
      R"({"status":"success","data":{"resultType":"vector","result":[)"
      R"({"metric":{"direction":"inbound","dst_namespace":"httpbin","code":"200"},"value":[1733460000.1,"7"]}]}})");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 1u);
  EXPECT_EQ((*parsed)[0].value, 7);
  EXPECT_EQ((*parsed)[0].labels.at("code"), "200");
  EXPECT_EQ(ParseQueryResult(R"({"status":"error","error":"parse error at char 3"})").status().message(),
            "Prometheus refused the query: parse error at char 3");
  EXPECT_FALSE(ParseQueryResult("<html>").ok());
  EXPECT_EQ(ParseQueryResult(R"({"status":"success"})").status().message(), "Prometheus's answer is not an instant vector");
  EXPECT_FALSE(ParseQueryResult(R"({"status":"success","data":{"resultType":"matrix","result":[]}})").ok());
}

TEST(StatTest, KindsAndEmptyHistograms) {
  EXPECT_EQ(*ParseGroupBy("svc"), GroupBy::kService);
  EXPECT_EQ(*ParseGroupBy("ns"), GroupBy::kNamespace);
  EXPECT_EQ(ParseGroupBy("pods").status().message(),
            "\"pods\" is not namespace, service, workload or route");
  EXPECT_EQ(Quantile(0.5, {}), -1);
  EXPECT_EQ(Quantile(0.5, {{0.001, 0}, {INFINITY, 0}}), -1);
}

}  // namespace
}  // namespace meshplug::traffic
