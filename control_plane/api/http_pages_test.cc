// The control plane's HTTP pages: /metrics is open; /http_sd lists every connected agent's
// /stats for Prometheus and needs a read-only or admin token.
#include "control_plane/api/http_pages.h"

#include <gtest/gtest.h>


#include "control_plane/store/sqlite_store.h"
#include "control_plane/testing/fresh_store.h"

namespace meshplug::control_plane::api {
namespace {

namespace http = boost::beast::http;

class HttpPagesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = testing::FreshSqliteStore("pages");
    tokens_ = std::move(*security::TokenIssuer::Open(*store_));
    ca_ = std::move(*security::CertificateAuthority::Open(*store_, {}));
    access_ = std::make_unique<security::Access>(*tokens_, *ca_, *store_);
    pages_ = std::make_unique<HttpPages>(stats_, registry_, [this] { return registry_.List(); }, *access_);
  }

  net::HttpResponse Get(const std::string& target, const std::string& token = "") {
    net::HttpRequest req{http::verb::get, target, 11};
    if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    return pages_->Handle(req, "127.0.0.1:1234");
  }
  std::string Token(security::Role role) { return tokens_->Issue(role, "test", "", std::chrono::hours(1)); }

  Stats stats_;
  xds::AgentRegistry registry_{&stats_};
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<security::TokenIssuer> tokens_;
  std::unique_ptr<security::CertificateAuthority> ca_;
  std::unique_ptr<security::Access> access_;
  std::unique_ptr<HttpPages> pages_;
};

TEST_F(HttpPagesTest, MetricsCountStreamsAndResponses) {
  registry_.Connected("shop/web-1", "delta", "ipv4:127.0.0.1:1", {}, "127.0.0.1:15000");
  registry_.Sent("shop/web-1", "type.googleapis.com/meshplug.v1.Snapshot", "v1");
  registry_.Nacked("shop/web-1", "type.googleapis.com/meshplug.v1.Snapshot", "bad");
  const net::HttpResponse res = Get("/metrics");
  EXPECT_EQ(res.result(), http::status::ok);
  for (const char* line : {"meshplug_cp_agents_connected 1\n", "meshplug_cp_xds_streams_total{protocol=\"delta\"} 1\n",
                           "meshplug_cp_xds_responses_total{type=\"Snapshot\"} 1\n",
                           "meshplug_cp_xds_nacks_total{type=\"Snapshot\"} 1\n",
                           "# HELP meshplug_cp_agents_connected Agents and xDS clients"}) {
    EXPECT_NE(res.body().find(line), std::string::npos) << line << " in\n" << res.body();
  }
}

TEST_F(HttpPagesTest, ServiceDiscoveryListsConnectedAgentsStatsWithATokenOnly) {
  registry_.Connected("shop/web-1", "delta", "p", {}, "127.0.0.1:15000");
  registry_.Connected("shop/web-2", "delta", "p", {}, "[::1]:15001");
  registry_.Connected("shop/old", "delta", "p", {}, "");          // reported no admin address
  registry_.Connected("shop/web-1#xds", "sotw", "p", {}, "");      // an xDS token's client
  const uint64_t gone = registry_.Connected("shop/gone", "delta", "p", {}, "127.0.0.1:15002");
  registry_.Disconnected("shop/gone", gone);

  EXPECT_EQ(Get("/http_sd").result(), http::status::unauthorized);
  EXPECT_EQ(Get("/http_sd", "not-a-token").result(), http::status::unauthorized);
  EXPECT_EQ(Get("/http_sd", Token(security::Role::kJoin)).result(), http::status::unauthorized);
  const net::HttpResponse res = Get("/http_sd", Token(security::Role::kReadOnly));
  ASSERT_EQ(res.result(), http::status::ok) << res.body();
  EXPECT_EQ(res.body(),
            "[\n"
            "  {\"targets\": [\"127.0.0.1:15000\"], \"labels\": {\"__metrics_path__\": \"/stats\", \"namespace\": \"shop\", "
            "\"workload\": \"web-1\"}},\n"
            "  {\"targets\": [\"[::1]:15001\"], \"labels\": {\"__metrics_path__\": \"/stats\", \"namespace\": \"shop\", "
            "\"workload\": \"web-2\"}}\n"
            "]\n");
  EXPECT_EQ(HttpPages::ServiceDiscovery({}), "[]\n");
  EXPECT_EQ(Get("/nothing").result(), http::status::not_found);
}

}  // namespace
}  // namespace meshplug::control_plane::api
