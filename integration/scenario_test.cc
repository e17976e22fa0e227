// docs/spec.md §11 end to end with real processes, and what goes wrong around it.
#include <gtest/gtest.h>

#include <chrono>

#include "control_plane/testing/mesh_fixtures.h"
#include "integration/reference_scenario.h"

namespace meshplug::integration {

using namespace harness;  // the process harness is this package's vocabulary
namespace {

using Chain = std::vector<std::string>;
constexpr milliseconds kConverge(15000);

const Chain kCurlOutbound = {"http-routing", "metrics", "tracing", "logging", "circuit-breaker",
                             "token-injector", "http-load-balancing", "http-default"};
const Chain kHttpbinInbound = {"tls-termination", "http-routing", "metrics", "tracing", "logging",
                               "throttle-service", "throttle-route", "token-verifier", "http-load-balancing",
                               "http-default"};

// Step 2: plugins enabled, both token plugins applied and mounted.
void MountPlugins(ReferenceScenario& s) {
  for (const char* f : {"integration/scenario/02-enable-plugins.yaml", "plugins/examples/token-injector.yaml",
                        "plugins/examples/token-verifier.yaml", "integration/scenario/03-plugin-chains.yaml"}) {
    ASSERT_EQ(s.Apply(f).exit_code, 0) << f;
  }
  ASSERT_TRUE(Eventually([&] { return s.AgentChain("curl-1", "outbound-http") == kCurlOutbound; }, kConverge))
      << s.AgentAdmin("curl-1", "/config_dump");
  ASSERT_TRUE(Eventually([&] { return s.AgentChain("httpbin-1", "inbound-http") == kHttpbinInbound; }, kConverge))
      << s.AgentAdmin("httpbin-1", "/config_dump");
}

TEST(ReferenceScenario, StepsOneToFourWithRestartsInBetween) {
  ReferenceScenario s(TempDir("scenario"));
  ASSERT_EQ(s.Start(), "");

  // Step 1: plain mesh.
  EXPECT_EQ(s.Curl("/get"), 200);

  // Step 2: the chains as config_dump shows them, from the control plane and the agents.
  MountPlugins(s);
  auto dump = s.Meshctl({"proxy", "config_dump", "curl/curl-1"});
  EXPECT_NE(dump.out.find("\"outbound-http\": [\"http-routing\", \"metrics\", \"tracing\", \"logging\", "
                          "\"circuit-breaker\", \"token-injector\", \"http-load-balancing\", \"http-default\"]"),
            std::string::npos)
      << dump.out << dump.err;
  EXPECT_EQ(s.Curl("/get"), 200);  // no config yet

  // Step 3: the verifier checks /get.
  ASSERT_EQ(s.Apply("integration/scenario/04-token-verifier-config.yaml").exit_code, 0);
  EXPECT_TRUE(Eventually([&] { return s.Curl("/get") == 401; }, kConverge));
  EXPECT_EQ(s.Curl("/headers"), 200);
  // Every spelling of /get is /get to the verifier, as it is to httpbin.
  for (const char* path : {"//get", "/%67et", "/./get", "/x/../get", "///get?a=1", "/.//get"}) {
    EXPECT_EQ(s.Curl(path), 401) << path;
  }

  // The control plane dies and comes back between steps 3 and 4: nothing is lost.
  s.KillControlPlane();
  EXPECT_EQ(s.Curl("/headers"), 200);  // traffic flows on the agents' last snapshots
  EXPECT_EQ(s.Curl("/get"), 401);
  ASSERT_EQ(s.StartControlPlane(), "");

  // Step 4: the injector adds the token.
  ASSERT_EQ(s.Apply("integration/scenario/05-token-injector-config.yaml").exit_code, 0);
  EXPECT_TRUE(Eventually([&] { return s.Curl("/get") == 200; }, kConverge));
  std::string body;
  EXPECT_EQ(s.Curl("/headers", &body), 200);
  EXPECT_NE(body.find("2f1acc6c3a606b082e5eef5e54414ffb"), std::string::npos) << body;  // httpbin saw the token
  EXPECT_EQ(s.Curl("//get", &body), 200);
  EXPECT_NE(body.find("\"url\":\"http://httpbin.httpbin:14001/get\""), std::string::npos) << body;  // and /get

  // An agent restarts: it rejoins with the same chains and traffic works again.
  ASSERT_EQ(s.RestartAgent("httpbin-1"), "");
  EXPECT_TRUE(Eventually([&] { return s.Curl("/get") == 200; }, kConverge));
  EXPECT_EQ(s.AgentChain("httpbin-1", "inbound-http"), kHttpbinInbound);
  auto status = s.Meshctl({"proxy", "status"});
  EXPECT_NE(status.out.find("httpbin/httpbin-1   true"), std::string::npos) << status.out;
}

TEST(ReferenceScenario, BrokenPluginAndAuthOutageFailOnlyWhatTheyTouch) {
  ReferenceScenario s(TempDir("failures"));
  ASSERT_EQ(s.Start(), "");
  MountPlugins(s);
  ASSERT_EQ(s.Apply("integration/scenario/04-token-verifier-config.yaml").exit_code, 0);
  ASSERT_EQ(s.Apply("integration/scenario/05-token-injector-config.yaml").exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return s.Curl("/get") == 200 && s.Curl("/headers") == 200; }, kConverge));

  // The auth service goes away: checked paths fail closed with 503 within the timeout;
  // unchecked ones still work.
  s.StopAuth();
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(s.Curl("/get"), 503);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  EXPECT_EQ(s.Curl("/headers"), 200);
  ASSERT_EQ(s.StartAuth(), "");
  EXPECT_TRUE(Eventually([&] { return s.Curl("/get") == 200; }, kConverge));

  // A plugin that fails at run time, mounted on httpbin's inbound chain: its requests fail
  // with 500 and the error is counted; deleting it restores 200.
  const std::string broken =
      control_plane::testing::PluginYaml("broken", 150,
                                         "function on_request(req, ctx)\n  local t = nil\n  return t.field\nend") +
      "---\n" +
      control_plane::testing::PluginChainYaml("httpbin", "broken-chain", "inbound-http", "broken",
                                              control_plane::testing::AppSelector("httpbin"));
  ASSERT_EQ(s.Meshctl({"apply", "-f", "-"}, broken).exit_code, 0);
  EXPECT_TRUE(Eventually([&] { return s.Curl("/get") == 500; }, kConverge));
  EXPECT_EQ(s.Curl("/headers"), 500);
  const std::string stats = s.AgentAdmin("httpbin-1", "/stats");
  EXPECT_NE(stats.find("plugin=\"broken\""), std::string::npos) << stats;
  ASSERT_EQ(s.Meshctl({"delete", "plugin", "broken"}).exit_code, 0);
  EXPECT_TRUE(Eventually([&] { return s.Curl("/get") == 200; }, kConverge));
  EXPECT_EQ(s.Curl("/headers"), 200);
}

}  // namespace
}  // namespace meshplug::integration
