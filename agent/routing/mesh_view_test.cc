#include "agent/routing/mesh_view.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <map>
#include <set>
#include <thread>

#include "agent/routing/uri.h"

namespace meshplug::agent::routing {
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

absl::Status BuildStatus(const v1::Snapshot& s) {
  return MeshView::Build(std::make_shared<v1::Snapshot>(s)).status();
}

// The normalization that routing and the agent share.
TEST(UriTest, NormalizesOriginFormTargets) {
  auto norm = [](std::string_view t) {
    std::string storage;
    const auto normalized = NormalizeOriginForm(t, storage);
    return normalized ? std::string(*normalized) : std::string("<refused>");
  };
  EXPECT_EQ(norm("/a/b?x=1"), "/a/b?x=1");
  std::string storage;
  const std::string_view plain = "/a/b?x=1";
  EXPECT_EQ(NormalizeOriginForm(plain, storage)->data(), plain.data());  // already normalized: not copied
  EXPECT_EQ(norm("/a/./b/../c"), "/a/c");
  EXPECT_EQ(norm("/a/b/.."), "/a/");
  EXPECT_EQ(norm("/a/b/."), "/a/b/");
  EXPECT_EQ(norm("/../../x"), "/x");
  EXPECT_EQ(norm("/a/%2e%2E/b"), "/b");
  EXPECT_EQ(norm("/%7Euser/%41%3a%3A?q=/../"), "/~user/A%3A%3A?q=/../");
  EXPECT_EQ(norm("/file.txt"), "/file.txt");
  EXPECT_EQ(norm("/a..b/c"), "/a..b/c");
  // Empty segments are merged, wherever they come from, so "//get" is "/get" for routing,
  // plugins and the upstream alike.
  EXPECT_EQ(norm("//get"), "/get");
  EXPECT_EQ(norm("/a//b///c?x=//y"), "/a/b/c?x=//y");
  EXPECT_EQ(norm("/.//get"), "/get");
  EXPECT_EQ(norm("//..//get"), "/get");
  EXPECT_EQ(norm("/%2e//get"), "/get");
  for (std::string_view bad : {"", "*", "a/b", "/a%2fb", "/a%2Fb", "/a%5cb", "/a\\b", "/a%00",
                               "/a%", "/a%4", "/a%g0", "/a#frag"}) {
    std::string storage;
    EXPECT_FALSE(NormalizeOriginForm(bad, storage)) << bad;
  }
}

TEST(UriTest, NormalizesHosts) {
  std::string storage;
  EXPECT_EQ(NormalizeHost("Web.Shop", storage), "web.shop");
  EXPECT_EQ(NormalizeHost("web.shop.:8080", storage), "web.shop:8080");
  EXPECT_EQ(NormalizeHost("web.shop.", storage), "web.shop");
  EXPECT_EQ(NormalizeHost("[::1]:80", storage), "[::1]:80");
  EXPECT_EQ(NormalizeHost("[FE80::1]", storage), "[fe80::1]");
  EXPECT_EQ(NormalizeHost("[fe80::1.]", storage), "[fe80::1.]");  // the dot is inside the brackets
  EXPECT_EQ(NormalizeHost(".", storage), ".");
  // A host that is normalized already is returned as it is, not copied.
  constexpr std::string_view kNormal = "web.shop:8080";
  EXPECT_EQ(NormalizeHost(kNormal, storage).data(), kNormal.data());
}

TEST(MeshViewTest, ABareNameIsAServiceOfTheWorkloadsOwnNamespace) {
  v1::Snapshot s;
  s.mutable_settings()->mutable_workload()->set_namespace_("shop");
  for (const char* ns : {"shop", "other"}) {
    s.add_clusters()->set_name(std::string("web.") + ns);
    v1::Service* svc = s.add_services();
    svc->set_name(std::string("web.") + ns);
    svc->add_hosts(std::string("web.") + ns);
    svc->add_hosts(std::string("web.") + ns + ":80");
    v1::HttpRoute* r = svc->add_routes();
    r->set_name("all");
    r->add_clusters()->set_cluster(std::string("web.") + ns);
  }
  auto view = MeshView::Build(std::make_shared<v1::Snapshot>(s));
  ASSERT_TRUE(view.ok()) << view.status() << " (two Services named web in two namespaces must not collide)";
  EXPECT_EQ((*view)->FindService("web", false)->config->name(), "web.shop");
  EXPECT_EQ((*view)->FindService("WEB:80", false)->config->name(), "web.shop");
  EXPECT_EQ((*view)->FindService("web.other.", false)->config->name(), "web.other");
  EXPECT_EQ((*view)->FindService("web:81", false), nullptr);
}

TEST(MeshViewTest, RoutesTheNormalizedPath) {
  auto mesh = MeshView::Build(std::make_shared<v1::Snapshot>(RoutedSnapshot()));
  ASSERT_TRUE(mesh.ok()) << mesh.status();
  // A plugin may rewrite the target after the agent normalized it.
  EXPECT_EQ(RouteOf(**mesh, http::verb::get, "web.shop", "/p/../a"), "exact");
  EXPECT_EQ(RouteOf(**mesh, http::verb::get, "web.shop", "/p/%2e%2e/a"), "exact");
  EXPECT_EQ(RouteOf(**mesh, http::verb::get, "web.shop", "/p/..%2fa"), "no route");
}

// RE2, not std::regex: no backtracking blow-up or recursion on long input,
// and patterns that need backtracking are refused when the snapshot is built.
TEST(MeshViewTest, RegexesAreRe2) {
  v1::Snapshot s = RoutedSnapshot();
  s.mutable_services(0)->mutable_routes(2)->mutable_match()->set_regex("/r/(a|b|ab)*c?");
  auto mesh = MeshView::Build(std::make_shared<v1::Snapshot>(s));
  ASSERT_TRUE(mesh.ok()) << mesh.status();
  // libstdc++'s std::regex recurses once per character here and overflows the stack.
  EXPECT_EQ(RouteOf(**mesh, http::verb::get, "web.shop", "/r/" + std::string(200'000, 'a')),
            "regex");
  EXPECT_EQ(RouteOf(**mesh, http::verb::get, "web.shop", "/r/" + std::string(200'000, 'a') + "d"),
            "no route");
  for (const char* pattern : {"/(a)\\1", "/(?=a)a"}) {
    v1::Snapshot bad = RoutedSnapshot();
    bad.mutable_services(0)->mutable_routes(2)->mutable_match()->set_regex(pattern);
    absl::Status st = BuildStatus(bad);
    EXPECT_FALSE(st.ok()) << pattern;
    EXPECT_NE(st.message().find("bad regex"), std::string::npos) << st;
  }
  v1::Snapshot bad_header = RoutedSnapshot();
  bad_header.mutable_services(0)->mutable_routes(3)->mutable_match()->mutable_headers(0)->set_regex(
      "(x)\\1");
  EXPECT_FALSE(BuildStatus(bad_header).ok());
}

// Numbers from the snapshot are checked before anything uses them.
TEST(MeshViewTest, RejectsOutOfRangeNumbers) {
  std::vector<std::pair<std::string, std::function<void(v1::Snapshot&)>>> cases = {
      {"endpoint port above 65535",
       [](v1::Snapshot& s) {
         v1::Endpoints* e = s.add_endpoints();
         e->set_cluster("exact");
         e->add_endpoints()->set_port(70000);
       }},
      {"endpoint port 0",
       [](v1::Snapshot& s) {
         v1::Endpoints* e = s.add_endpoints();
         e->set_cluster("exact");
         e->add_endpoints()->set_address("10.0.0.1");
       }},
      {"service port", [](v1::Snapshot& s) { s.mutable_services(0)->add_ports()->set_port(65536); }},
      {"target port",
       [](v1::Snapshot& s) {
         v1::ServicePort* p = s.mutable_services(0)->add_ports();
         p->set_port(80);
         p->set_target_port(100000);
       }},
      {"tcp listen port",
       [](v1::Snapshot& s) {
         v1::ServicePort* p = s.mutable_services(0)->add_ports();
         p->set_port(80);
         p->set_protocol(v1::PROTOCOL_TCP);
         p->set_tcp_listen_port(65536 + 8080);
       }},
      {"route port",
       [](v1::Snapshot& s) { s.mutable_services(0)->mutable_routes(0)->mutable_match()->set_port(70000); }},
      {"retries", [](v1::Snapshot& s) { s.mutable_clusters(0)->mutable_retry()->set_num_retries(11); }},
      {"virtual address not IPv4", [](v1::Snapshot& s) { s.mutable_services(0)->set_virtual_ip("fd00::7"); }},
      {"retries that would wrap",
       [](v1::Snapshot& s) {
         s.mutable_clusters(0)->mutable_retry()->set_num_retries(4294967295u);
       }},
  };
  for (const auto& [name, mutate] : cases) {
    v1::Snapshot s = RoutedSnapshot();
    mutate(s);
    EXPECT_FALSE(BuildStatus(s).ok()) << name;
  }
  v1::Snapshot ten_retries = RoutedSnapshot();
  ten_retries.mutable_clusters(0)->mutable_retry()->set_num_retries(10);
  EXPECT_TRUE(BuildStatus(ten_retries).ok());
}

// Per-route settings are found by name, so names must be unique per service.
TEST(MeshViewTest, RejectsDuplicateRouteNames) {
  v1::Snapshot s = RoutedSnapshot();
  s.mutable_services(0)->mutable_routes(1)->set_name("exact");
  absl::Status st = BuildStatus(s);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("route exact: route name is duplicated"), std::string::npos) << st;
}

TEST(MeshViewTest, HugeWeightsNeitherWrapNorAllocate) {
  google::protobuf::RepeatedPtrField<v1::WeightedCluster> split;
  for (const char* name : {"one", "two"}) {
    v1::WeightedCluster* c = split.Add();
    c->set_cluster(name);
    c->set_weight(3'000'000'000u);
  }
  EXPECT_EQ(TotalWeight(split), 6'000'000'000u);
  EXPECT_EQ(*PickWeighted(split, 0), "one");
  EXPECT_EQ(*PickWeighted(split, 3'000'000'000u), "two");
  EXPECT_EQ(*PickWeighted(split, 5'999'999'999u), "two");
  // One schedule entry per weight unit would be 8.6 billion entries.
  std::vector<v1::Endpoint> eps(2);
  eps[0].set_weight(4'294'967'295u);
  eps[1].set_weight(4'294'967'295u);
  LoadBalancer lb(v1::LB_POLICY_ROUND_ROBIN, eps);
  size_t first = *lb.Pick();
  EXPECT_NE(*lb.Pick(), first);
  EXPECT_EQ(*lb.Pick(), first);
}

TEST(LoadBalancerTest, SmoothWeightedRoundRobinKeepsProportions) {
  std::vector<v1::Endpoint> eps(3);
  eps[0].set_weight(5);
  eps[1].set_weight(1);
  eps[2].set_weight(1);
  LoadBalancer lb(v1::LB_POLICY_ROUND_ROBIN, eps);
  for (int period = 0; period < 10; ++period) {
    std::map<size_t, int> counts;
    for (int i = 0; i < 7; ++i) ++counts[*lb.Pick()];
    EXPECT_EQ(counts, (std::map<size_t, int>{{0, 5}, {1, 1}, {2, 1}})) << period;
  }
}

// A new snapshot builds new modules and balancers; their first picks must
// not always be the same cluster or endpoint.
TEST(LoadBalancerTest, FirstPicksOfNewBalancersVary) {
  for (v1::LbPolicy policy : {v1::LB_POLICY_ROUND_ROBIN, v1::LB_POLICY_LEAST_REQUEST}) {
    std::set<size_t> first;
    for (int i = 0; i < 64 && first.size() < 2; ++i) {
      LoadBalancer lb(policy, std::vector<v1::Endpoint>(2));
      first.insert(*lb.Pick());
    }
    EXPECT_EQ(first.size(), 2u) << policy;  // 2^-63 to fail by chance
  }
}

}  // namespace
}  // namespace meshplug::agent::routing
