// The tap's promises to the data path: bounded by rate and queue, sampled, filtered, and
// free while nobody taps.
#include "agent/proxy/tap.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

namespace meshplug::agent::proxy {
namespace {

TapRecord Request(std::string_view path) {
  TapRecord r;
  r.method = "GET";
  r.path = path;
  r.status = 200;
  return r;
}

TapFilter Filter(uint32_t max_per_second, double sample = 1, std::string path_prefix = "", std::string method = "") {
  TapFilter f;
  f.max_per_second = max_per_second;
  f.sample = sample;
  f.path_prefix = std::move(path_prefix);
  f.method = std::move(method);
  return f;
}

TEST(TapTest, RateCapSamplingAndFilters) {
  boost::asio::io_context io;
  TapHub hub;
  EXPECT_FALSE(hub.active());
  auto capped = hub.Subscribe(Filter(5), io.get_executor());
  auto sampled = hub.Subscribe(Filter(TapHub::kMaxPerSecond, 0.5), io.get_executor());
  auto posts = hub.Subscribe(Filter(100, 1, "/api", "POST"), io.get_executor());
  EXPECT_TRUE(hub.active());
  for (int i = 0; i < 1000; ++i) hub.Publish(Request("/api/x"));
  EXPECT_EQ(capped->Take().size(), 5u);
  EXPECT_GE(hub.dropped(), 995u);  // capped's, and some of sampled's
  const size_t half = sampled->Take().size();
  EXPECT_GT(half, 400u);
  EXPECT_LT(half, 600u);
  EXPECT_TRUE(posts->Take().empty());  // GETs only
  // The queue is bounded even when the rate allows more than it holds.
  auto slow = hub.Subscribe(Filter(TapHub::kMaxPerSecond), io.get_executor());
  for (int i = 0; i < 3000; ++i) hub.Publish(Request("/"));
  EXPECT_LE(slow->Take().size(), TapHub::kQueueLimit);
  for (const auto& s : {capped, sampled, posts, slow}) hub.Unsubscribe(s);
  EXPECT_FALSE(hub.active());
}

TEST(TapTest, SummaryIsOneJsonLineWithoutSecrets) {
  TapRecord r = Request("/get");
  r.inbound = true;
  r.authority = "httpbin.httpbin:14001";
  r.status = 401;
  r.seconds = 0.0012;
  r.parties.src_namespace = "curl";
  r.parties.dst_service = "httpbin";
  r.plugins = {"http-routing", "token-verifier"};
  r.answered_by = "token-verifier";
  EXPECT_EQ(TapHub::Json(r),
            "{\"direction\":\"inbound\",\"method\":\"GET\",\"authority\":\"httpbin.httpbin:14001\",\"path\":\"/get\","
            "\"status\":401,\"latency_ms\":1.200,\"src\":{\"namespace\":\"curl\",\"workload\":\"\","
            "\"service_account\":\"\"},\"dst\":{\"namespace\":\"\",\"service\":\"httpbin\",\"workload\":\"\"},"
            "\"route\":\"\",\"peer\":\"\",\"plugins\":[\"http-routing\",\"token-verifier\"],"
            "\"answered_by\":\"token-verifier\"}");
}

}  // namespace
}  // namespace meshplug::agent::proxy
