// The admin endpoint over real sockets.
#include <gtest/gtest.h>

#include <algorithm>

#include "agent/agent.h"
#include "agent/testing/test_support.h"
#include "common/config_dump.h"

namespace meshplug::agent::admin {
namespace {

using testing::AddService;
using testing::BaseSnapshot;
using testing::LocalAgentOptions;
using testing::Client;
using testing::TestUpstream;
using testing::WaitFor;

TEST(AdminTest, EachAgentHasItsOwnUnguessableAdminToken) {
  Agent a(LocalAgentOptions(1)), b(LocalAgentOptions(1));
  EXPECT_EQ(a.admin_token().size(), 64u);
  EXPECT_NE(a.admin_token(), b.admin_token());
}

TEST(AdminTest, ReadyBeforeAndAfterTheFirstSnapshot) {
  Agent agent(LocalAgentOptions(1));
  ASSERT_TRUE(agent.Start().ok());
  Client c(agent.admin_port());
  EXPECT_EQ(c.Get("admin", "/ready")->result_int(), 503);
  ASSERT_TRUE(agent.Apply(BaseSnapshot("v1")).ok());
  EXPECT_EQ(c.Get("admin", "/ready")->result_int(), 200);
}

// Snapshot `version` with Service web.shop in front of `upstream`, applied to a started agent.
v1::Snapshot StartWithWebShop(Agent& agent, const TestUpstream& upstream, const std::string& version) {
  v1::Snapshot s = BaseSnapshot(version);
  AddService(s, "web.shop", {upstream.port()});
  EXPECT_TRUE(agent.Apply(s).ok());
  EXPECT_TRUE(agent.Start().ok());
  return s;
}

TEST(AdminTest, ConfigDumpStatsAndClusters) {
  TestUpstream a("a");
  Agent agent(LocalAgentOptions(1));
  const v1::Snapshot s = StartWithWebShop(agent, a, "v7");
  Client proxy(agent.outbound_port());
  ASSERT_EQ(proxy.Get("web.shop", "/")->result_int(), 200);

  Client c(agent.admin_port());
  auto refused = c.Get("admin", "/config_dump");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->result_int(), 401);
  EXPECT_EQ(refused->body().find("\"version\""), std::string::npos);
  EXPECT_EQ(c.Get("admin", "/config_dump", "Authorization: Bearer wrong\r\n")->result_int(), 401);
  auto dump = c.Get("admin", "/config_dump", "Authorization: Bearer " + agent.admin_token() + "\r\n");
  ASSERT_TRUE(dump);
  EXPECT_EQ(dump->result_int(), 200);
  EXPECT_EQ((*dump)[boost::beast::http::field::content_type], "application/json");
  EXPECT_NE(dump->body().find("\"version\": \"v7\""), std::string::npos);
  EXPECT_NE(dump->body().find("\"outbound-http\": [\"http-routing\", \"metrics\", \"tracing\", "
                              "\"logging\", \"circuit-breaker\", \"http-load-balancing\", "
                              "\"http-default\"]"),
            std::string::npos)
      << dump->body();
  // The same bytes as the control plane's dump of the same snapshot (meshctl proxy config_dump).
  EXPECT_EQ(dump->body(), ConfigDumpJson(s));
  auto stats = c.Get("admin", "/stats");
  ASSERT_TRUE(stats);
  EXPECT_NE(stats->body().find("meshplug_agent_snapshot_info{version=\"v7\"} 1\n"), std::string::npos)
      << stats->body();

  std::string text;
  EXPECT_TRUE(WaitFor([&] {
    auto stats = c.Get("admin", "/stats");
    text = stats ? stats->body() : "";
    return text.find("dst_namespace=\"shop\",dst_service=\"web\",dst_workload=\"\",route=\"default\","
                     "code=\"200\"} 1\n") != std::string::npos;
  })) << text;
  auto clusters = c.Get("admin", "/clusters");
  ASSERT_TRUE(clusters);
  EXPECT_NE(clusters->body().find("web.shop|80::127.0.0.1:" + std::to_string(a.port()) +
                                  "::rq_active::0"),
            std::string::npos)
      << clusters->body();
}

// /tap streams a summary of each matching request while it is open: no query string, the
// plugins that ran, and which one answered; with the admin token only.
TEST(AdminTest, TapStreamsMatchingRequestSummaries) {
  TestUpstream a("a");
  Agent agent(LocalAgentOptions(1));
  StartWithWebShop(agent, a, "v1");
  const std::string token = "Authorization: Bearer " + agent.admin_token() + "\r\n";
  Client c(agent.admin_port());
  EXPECT_EQ(c.Get("admin", "/tap")->result_int(), 401);
  for (const char* bad : {"/tap?max_rps=0", "/tap?sample=2", "/tap?seconds=99999", "/tap?path=get", "/tap?color=red"}) {
    Client again(agent.admin_port());
    auto r = again.Get("admin", bad, token);
    ASSERT_TRUE(r) << bad;
    EXPECT_EQ(r->result_int(), 400) << bad;
    EXPECT_NE(r->body().find("is not valid"), std::string::npos) << r->body();
  }

  Client tap(agent.admin_port());
  ASSERT_TRUE(tap.Send("GET /tap?path=%2Fok&seconds=1 HTTP/1.1\r\nHost: admin\r\n" + token + "\r\n"));
  ASSERT_TRUE(WaitFor([&] { return agent.tap().active(); }));
  Client proxy(agent.outbound_port());
  for (const char* path : {"/ok?secret=s3cr3t", "/other", "/ok/2"}) ASSERT_EQ(proxy.Get("web.shop", path)->result_int(), 200);
  auto stream = tap.Read();  // the stream ends after its second
  ASSERT_TRUE(stream);
  EXPECT_EQ(stream->result_int(), 200);
  EXPECT_EQ((*stream)[boost::beast::http::field::content_type], "application/x-ndjson");
  const std::string& lines = stream->body();
  EXPECT_EQ(std::count(lines.begin(), lines.end(), '\n'), 2) << lines;
  EXPECT_NE(lines.find("\"method\":\"GET\",\"authority\":\"web.shop\",\"path\":\"/ok\",\"status\":200"),
            std::string::npos)
      << lines;
  EXPECT_NE(lines.find("\"path\":\"/ok/2\""), std::string::npos) << lines;
  EXPECT_EQ(lines.find("s3cr3t"), std::string::npos);
  EXPECT_EQ(lines.find("/other"), std::string::npos);
  EXPECT_NE(lines.find("\"plugins\":[\"http-routing\",\"metrics\","), std::string::npos) << lines;
  EXPECT_FALSE(agent.tap().active());
}

TEST(AdminTest, QuitQuitQuitDrainsAndStops) {
  Agent agent(LocalAgentOptions(1));
  ASSERT_TRUE(agent.Apply(BaseSnapshot("v1")).ok());
  ASSERT_TRUE(agent.Start().ok());
  Client c(agent.admin_port());
  EXPECT_EQ(c.Get("admin", "/quitquitquit", "Authorization: Bearer " + agent.admin_token() + "\r\n")->result_int(),
            405);
  // Without the token (what a plugin's http_call could send) nothing stops.
  ASSERT_TRUE(c.Send("POST /quitquitquit HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\n\r\n"));
  auto refused = c.Read();
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->result_int(), 401);
  EXPECT_FALSE(agent.draining());
  ASSERT_TRUE(c.Send("POST /quitquitquit HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer " + agent.admin_token() +
                     "\r\nContent-Length: 0\r\n\r\n"));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200);
  agent.Wait();
  EXPECT_TRUE(agent.draining());
  Client late(agent.outbound_port());
  EXPECT_FALSE(late.connected());
}

}  // namespace
}  // namespace meshplug::agent::admin
