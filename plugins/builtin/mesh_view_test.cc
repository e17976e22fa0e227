#include "plugins/builtin/mesh_view.h"

#include <gtest/gtest.h>

#include <map>

#include "plugins/builtin/state.h"

namespace meshplug::builtin {
namespace {

namespace http = plugins::http;

v1::Snapshot RoutedSnapshot() {
  v1::Snapshot s;
  for (const char* name : {"exact", "prefix", "regex", "header"}) {
    s.add_clusters()->set_name(name);
  }
  v1::Service* svc = s.add_services();
  svc->set_name("web.shop");
  svc->add_hosts("Web.Shop");
  svc->add_hosts("web.shop:8080");
  auto route = [&](const char* name) {
    v1::HttpRoute* r = svc->add_routes();
    r->set_name(name);
    v1::WeightedCluster* c = r->add_clusters();
    c->set_cluster(name);
    c->set_weight(1);
    return r->mutable_match();
  };
  route("exact")->set_exact("/a");
  route("prefix")->set_prefix("/p/");
  route("regex")->set_regex("/r/[0-9]+");
  v1::RouteMatch* header = route("header");
  v1::HeaderMatch* h = header->add_headers();
  h->set_name("x-user");
  h->set_prefix("admin");
  header->add_methods("POST");
  header->set_port(8080);
  return s;
}

std::string RouteOf(const MeshView& mesh, http::verb method, std::string host, std::string target,
                    std::map<std::string, std::string> headers = {}) {
  http::request_header<> req;
  req.method(method);
  req.target(target);
  req.set(http::field::host, host);
  for (const auto& [k, v] : headers) req.set(k, v);
  RouteChoice c = mesh.Route(req, false);
  if (c.service == nullptr) return "no service";
  return c.route ? c.route->config->name() : "no route";
}

TEST(MeshViewTest, MatchesHostsPathsHeadersMethodsAndPorts) {
  auto mesh = MeshView::Build(std::make_shared<v1::Snapshot>(RoutedSnapshot()));
  ASSERT_TRUE(mesh.ok()) << mesh.status();
  const MeshView& m = **mesh;
  EXPECT_EQ(RouteOf(m, http::verb::get, "WEB.shop", "/a?x=1"), "exact");
  EXPECT_EQ(RouteOf(m, http::verb::get, "web.shop", "/a/b"), "no route");
  EXPECT_EQ(RouteOf(m, http::verb::get, "web.shop", "/p/x"), "prefix");
  EXPECT_EQ(RouteOf(m, http::verb::get, "web.shop", "/r/12"), "regex");
  EXPECT_EQ(RouteOf(m, http::verb::get, "web.shop", "/r/12x"), "no route");
  EXPECT_EQ(RouteOf(m, http::verb::post, "web.shop:8080", "/z", {{"x-user", "admin-1"}}), "header");
  EXPECT_EQ(RouteOf(m, http::verb::get, "web.shop:8080", "/z", {{"x-user", "admin-1"}}),
            "no route");
  EXPECT_EQ(RouteOf(m, http::verb::post, "web.shop", "/z", {{"x-user", "admin-1"}}), "no route");
  EXPECT_EQ(RouteOf(m, http::verb::get, "other", "/a"), "no service");
}

TEST(MeshViewTest, RejectsDuplicateHostsAndUnknownClusters) {
  v1::Snapshot s = RoutedSnapshot();
  *s.add_services() = s.services(0);
  s.mutable_services(1)->set_name("copy.shop");
  auto mesh = MeshView::Build(std::make_shared<v1::Snapshot>(s));
  ASSERT_FALSE(mesh.ok());
  EXPECT_NE(mesh.status().message().find("selects both web.shop and copy.shop"),
            std::string::npos);
}

TEST(LoadBalancerTest, WeightedRoundRobinInterleaves) {
  std::vector<v1::Endpoint> eps(2);
  eps[0].set_weight(2);
  eps[1].set_weight(1);
  LoadBalancer lb(v1::LB_POLICY_ROUND_ROBIN, eps);
  std::vector<size_t> picks;
  for (int i = 0; i < 6; ++i) picks.push_back(*lb.Pick());
  EXPECT_EQ(picks, (std::vector<size_t>{0, 1, 0, 0, 1, 0}));
  EXPECT_EQ(*lb.Pick(0), 1u);
}

TEST(LoadBalancerTest, LeastRequestAvoidsBusyEndpoints) {
  LoadBalancer lb(v1::LB_POLICY_LEAST_REQUEST, std::vector<v1::Endpoint>(3));
  lb.Started(0);
  lb.Started(1);
  EXPECT_EQ(*lb.Pick(), 2u);
  EXPECT_FALSE(LoadBalancer(v1::LB_POLICY_ROUND_ROBIN, {}).Pick());
}

TEST(StateTest, TokenBucketRefills) {
  RateLimiters limiters;
  v1::RateLimit limit;
  limit.set_requests(2);
  limit.mutable_per()->set_seconds(1);
  auto t0 = Clock::now();
  EXPECT_TRUE(limiters.TryTake("s", limit, t0));
  EXPECT_TRUE(limiters.TryTake("s", limit, t0));
  EXPECT_FALSE(limiters.TryTake("s", limit, t0));
  EXPECT_TRUE(limiters.TryTake("s", limit, t0 + std::chrono::milliseconds(500)));
  EXPECT_TRUE(limiters.TryTake("other", limit, t0));
}

TEST(StateTest, BreakerOpensAfterConsecutiveErrorsAndCloses) {
  CircuitBreakers breakers;
  v1::CircuitBreaker config;
  config.set_consecutive_errors(2);
  config.mutable_open_duration()->set_seconds(10);
  auto t0 = Clock::now();
  breakers.Record("c", config, true, false, t0);
  breakers.Record("c", config, false, false, t0);  // a success resets the run
  breakers.Record("c", config, true, false, t0);
  EXPECT_FALSE(breakers.IsOpen("c", t0));
  breakers.Record("c", config, true, false, t0);
  EXPECT_TRUE(breakers.IsOpen("c", t0));
  EXPECT_FALSE(breakers.IsOpen("c", t0 + std::chrono::seconds(11)));
}

TEST(StatsTest, RendersPrometheusText) {
  Stats stats;
  stats.Count("requests_total", {{"service", "a\"b"}});
  stats.Observe("latency_seconds", {{"service", "a"}}, 0.003);
  std::string text = stats.RenderPrometheus();
  EXPECT_NE(text.find("# TYPE requests_total counter\nrequests_total{service=\"a\\\"b\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("latency_seconds_bucket{service=\"a\",le=\"0.0025\"} 0"), std::string::npos);
  EXPECT_NE(text.find("latency_seconds_bucket{service=\"a\",le=\"0.005\"} 1"), std::string::npos);
  EXPECT_NE(text.find("latency_seconds_count{service=\"a\"} 1"), std::string::npos);
}

}  // namespace
}  // namespace meshplug::builtin
