// Seeing the mesh (issue 22): the reference scenario with Debian's Prometheus discovering
// every agent through the control plane's /http_sd; `meshctl stat` from the agents and
// from Prometheus, and PromQL, agree exactly with the requests the test sent (401s from
// token-verifier included); both binaries' metrics pass `promtool check metrics`.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "common/strings.h"
#include "integration/harness/prometheus.h"
#include "integration/reference_scenario.h"
#include "net/http_client.h"

namespace meshplug::integration {

using namespace harness;  // the process harness is this package's vocabulary
namespace {

constexpr milliseconds kConverge(15000);
constexpr int kRefused = 20, kAnswered = 30;  // /get (401) and /headers (200) sent in the measured phase

// The httpbin row of `meshctl stat service -n httpbin`, split into its columns.
std::vector<std::string> HttpbinRow(const std::string& table) {
  std::istringstream lines(table);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream cells(line);
    std::vector<std::string> row;
    for (std::string cell; cells >> cell;) row.push_back(cell);
    if (row.size() == 8 && row[0] == "httpbin" && row[1] == "httpbin") return row;
  }
  return {};
}

// A line of `text` starting with `prefix`, for the log of a failure.
std::string Excerpt(const std::string& text, const std::string& prefix) {
  std::string out;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with(prefix)) out += line + "\n";
  }
  return out;
}

TEST(Observability, StatPromqlAndTheAgentsAgreeOnTheTokenSteps) {
  if (const std::string why = PrometheusProcess::Unavailable(); !why.empty()) FAIL() << why;
  ReferenceScenario s(TempDir("observability"));
  ASSERT_EQ(s.Start(), "");
  for (const char* f : {"integration/scenario/02-enable-plugins.yaml", "plugins/examples/token-injector.yaml",
                        "plugins/examples/token-verifier.yaml", "integration/scenario/03-plugin-chains.yaml",
                        "integration/scenario/04-token-verifier-config.yaml"}) {
    ASSERT_EQ(s.Apply(f).exit_code, 0) << f;
  }
  ASSERT_TRUE(Eventually([&] { return s.Curl("/get") == 401; }, kConverge));  // step 3 is live

  const RunResult token = s.Meshctl({"token", "create", "--role", "read-only", "--ttl", "1h"});
  ASSERT_EQ(token.exit_code, 0) << token.err;
  PrometheusProcess prometheus(s.dir() + "/prometheus", s.control_plane_http_address(),
                               token.out.substr(0, token.out.find('\n')));
  ASSERT_EQ(prometheus.error(), "");

  // Prometheus found both agents through /http_sd and scrapes them.
  const std::string up = "sum(up{job=\"meshplug\"})";
  ASSERT_TRUE(Eventually([&] { return prometheus.Scalar(up).value_or(0) == 2; }, milliseconds(30000)))
      << prometheus.Query("up").status();

  const std::string to_httpbin = "direction=\"inbound\",dst_namespace=\"httpbin\",dst_service=\"httpbin\"";
  const std::string total = Cat("sum(meshplug_http_requests_total{", to_httpbin, "})");
  const std::string ok = Cat("sum(meshplug_http_requests_total{", to_httpbin, ",code=~\"[123]..\"})");
  // What the agents count now, once Prometheus holds the same (no request in flight).
  auto agents_total = [&](const std::string& code_prefix) {
    double n = 0;
    for (const auto& sample : traffic::ParsePrometheusText(s.AgentAdmin("httpbin-1", "/stats"), traffic::kRequests, "")) {
      if (sample.labels.at("direction") == "inbound" && sample.labels.at("dst_service") == "httpbin" &&
          sample.labels.at("code").starts_with(code_prefix)) {
        n += sample.value;
      }
    }
    return n;
  };
  double before_total = -1, before_ok = -1;
  ASSERT_TRUE(Eventually([&] {
    before_total = agents_total("");
    before_ok = agents_total("2");
    return prometheus.Scalar(total).value_or(-1) == before_total;
  }, milliseconds(30000)));

  for (int i = 0; i < kRefused; ++i) ASSERT_EQ(s.Curl("/get"), 401);
  for (int i = 0; i < kAnswered; ++i) ASSERT_EQ(s.Curl("/headers"), 200);
  const double want_total = before_total + kRefused + kAnswered, want_ok = before_ok + kAnswered;

  // PromQL: exactly what was sent.
  ASSERT_TRUE(Eventually([&] { return prometheus.Scalar(total).value_or(-1) == want_total; }, milliseconds(30000)))
      << Excerpt(s.AgentAdmin("httpbin-1", "/stats"), "meshplug_http_requests_total");
  EXPECT_EQ(prometheus.Scalar(ok).value_or(-1), want_ok);
  // Which plugin answered the 401s.
  EXPECT_GE(prometheus
                .Scalar("sum(meshplug_plugin_responses_total{chain=\"inbound-http\",plugin=\"token-verifier\","
                        "code=\"401\"})")
                .value_or(0),
            kRefused);

  // meshctl stat, straight from the agents and from Prometheus: the same row, exact.
  const RunResult from_agents = s.Meshctl({"stat", "service", "-n", "httpbin"});
  ASSERT_EQ(from_agents.exit_code, 0) << from_agents.err;
  const RunResult from_prometheus = s.Meshctl({"stat", "service", "-n", "httpbin", "--prometheus", prometheus.url()});
  ASSERT_EQ(from_prometheus.exit_code, 0) << from_prometheus.err;
  std::cout << "meshctl stat service -n httpbin:\n" << from_agents.out << "with --prometheus:\n" << from_prometheus.out;
  const std::vector<std::string> row = HttpbinRow(from_agents.out);
  ASSERT_FALSE(row.empty()) << from_agents.out;
  EXPECT_EQ(row, HttpbinRow(from_prometheus.out)) << from_agents.out << from_prometheus.out;
  EXPECT_EQ(row[2], Cat(static_cast<int64_t>(want_total)));
  char success[32];
  std::snprintf(success, sizeof success, "%.2f%%", 100 * want_ok / want_total);
  EXPECT_EQ(row[3], success);
  // p99 as PromQL's histogram_quantile computes it over the same buckets.
  const double p99 = prometheus
                         .Scalar(Cat("histogram_quantile(0.99, sum by (le) (meshplug_http_request_duration_seconds_bucket{",
                                     to_httpbin, "}))"))
                         .value_or(-1);
  ASSERT_GT(p99, 0);
  EXPECT_NEAR(std::stod(row[7]), p99 * 1000, 0.01) << row[7];

  // The caller's side: curl's agent saw the same requests, to the same workload.
  const RunResult outbound = s.Meshctl({"stat", "workload", "httpbin-1", "-n", "httpbin", "--direction", "outbound"});
  ASSERT_EQ(outbound.exit_code, 0) << outbound.err;
  double curl_sent = 0;
  for (const auto& sample :
       traffic::ParsePrometheusText(s.AgentAdmin("curl-1", "/stats"), traffic::kRequests, "curl/curl-1")) {
    if (sample.labels.at("direction") == "outbound" && sample.labels.at("dst_workload") == "httpbin-1") {
      curl_sent += sample.value;
    }
  }
  EXPECT_NE(outbound.out.find(Cat("httpbin     httpbin-1   ", static_cast<int64_t>(curl_sent), " ")), std::string::npos)
      << curl_sent << " in\n" << outbound.out;

  // meshctl tap shows the 401 and the plugin that answered it.
  auto tap = Process::Start({"cli/meshctl", "--config", s.meshctl_config(), "--server", s.control_plane_address(), "tap",
                             "httpbin/httpbin-1", "--path", "/get", "--duration", "30s", "--admin-token-file",
                             s.dir() + "/httpbin-1.admin-token"},
                            s.dir() + "/tap.log");
  ASSERT_TRUE(tap);
  ASSERT_TRUE(Eventually(
      [&] { return s.AgentAdmin("httpbin-1", "/stats").find("meshplug_agent_taps_active 1\n") != std::string::npos; },
      kConverge))
      << tap->Log();
  EXPECT_EQ(s.Curl("/get"), 401);
  EXPECT_EQ(s.Curl("/headers"), 200);  // not /get: filtered out
  ASSERT_TRUE(Eventually([&] { return tap->Log().find("answered-by=token-verifier") != std::string::npos; }, kConverge))
      << tap->Log();
  const std::string tapped = tap->Log();
  std::cout << "meshctl tap httpbin/httpbin-1 --path /get:\n" << tapped;
  EXPECT_NE(tapped.find("inbound GET httpbin.httpbin:14001/get :status=401"), std::string::npos) << tapped;
  EXPECT_NE(tapped.find("src=curl/curl"), std::string::npos) << tapped;
  EXPECT_EQ(tapped.find("/headers"), std::string::npos) << tapped;
  tap.reset();  // meshctl goes away long before its 30 s: the agent ends the tap
  EXPECT_TRUE(Eventually(
      [&] { return s.AgentAdmin("httpbin-1", "/stats").find("meshplug_agent_taps_active 0\n") != std::string::npos; },
      kConverge));

  // The dashboard's data needs a reader's token, and never carries a PluginConfig's values
  // (04-token-verifier-config.yaml's Verifier address).
  EXPECT_FALSE(net::HttpGet(s.control_plane_http_address(), "/api/mesh", milliseconds(5000)).ok());
  {
    const std::string read_only = token.out.substr(0, token.out.find('\n'));
    const RunResult mesh = harness::Run({"/usr/bin/curl", "-s", "--max-time", "10", "-H",
                                         "Authorization: Bearer " + read_only,
                                         "http://" + s.control_plane_http_address() + "/api/mesh"});
    EXPECT_NE(mesh.out.find("\"token-verifier-config\""), std::string::npos) << mesh.out;
    EXPECT_EQ(mesh.out.find("ext-auth.auth:8079"), std::string::npos) << mesh.out;
  }

  // The dashboard in a headless Chromium: the graph shows curl → httpbin with the success
  // rate curl's agent measured, and a screenshot is saved.
  const RunResult link = s.Meshctl({"dashboard"});
  ASSERT_EQ(link.exit_code, 0) << link.err;
  const std::string url = link.out.substr(0, link.out.find('\n'));
  ASSERT_TRUE(url.starts_with("http://" + s.control_plane_http_address() + "/#token=")) << url;
  traffic::Row edge;
  for (const auto& r : traffic::Aggregate(
           traffic::ParsePrometheusText(s.AgentAdmin("curl-1", "/stats"), traffic::kRequests, "curl/curl-1"), {},
           traffic::GroupBy::kEdge, "outbound", "httpbin", "httpbin")) {
    edge = r;
  }
  ASSERT_GT(edge.requests, want_total - before_total);
  char edge_success[32];
  std::snprintf(edge_success, sizeof edge_success, "%.2f%%", 100 * edge.successes / edge.requests);
  const std::string shots = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR") ? std::getenv("TEST_UNDECLARED_OUTPUTS_DIR") : s.dir();
  const std::vector<std::string> chromium = {"/usr/bin/chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
                                             "--user-data-dir=" + s.dir() + "/chromium", "--window-size=1400,1100",
                                             "--virtual-time-budget=5000"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = chromium;
    argv.insert(argv.end(), extra.begin(), extra.end());
    return harness::Run(argv, "", milliseconds(60000));
  };
  const RunResult dom = with({"--dump-dom", url});
  ASSERT_EQ(dom.exit_code, 0) << dom.err;
  const std::string edge_label = Cat("data-edge=\"curl/curl-1 -&gt; httpbin/httpbin\"");
  const size_t label = dom.out.find(Cat("class=\"edge-label\" ", edge_label));
  ASSERT_NE(label, std::string::npos) << dom.out;
  EXPECT_NE(dom.out.substr(label, 300).find(Cat(" · ", edge_success, " · p99 ")), std::string::npos)
      << edge_success << " in " << dom.out.substr(label, 300);
  EXPECT_NE(dom.out.find("token-verifier"), std::string::npos);  // httpbin's inbound chain and the Plugin
  EXPECT_NE(dom.out.find("curl/curl-1"), std::string::npos);
  const RunResult shot = with({"--screenshot=" + shots + "/dashboard.png", url});
  EXPECT_EQ(shot.exit_code, 0) << shot.err;
  EXPECT_TRUE(std::filesystem::exists(shots + "/dashboard.png"));
  std::cout << "dashboard screenshot: " << shots << "/dashboard.png\n";

  // Both binaries' metrics are valid Prometheus text, HELP and TYPE for every family.
  const std::vector<std::pair<std::string, std::string>> texts = {
      {"agent", s.AgentAdmin("httpbin-1", "/stats")},
      {"control plane", net::HttpGet(s.control_plane_http_address(), "/metrics", milliseconds(5000)).value_or("")}};
  for (const auto& [what, text] : texts) {
    ASSERT_NE(text.find("# TYPE"), std::string::npos) << what;
    const RunResult check = harness::Run({"/usr/bin/promtool", "check", "metrics"}, text);
    EXPECT_EQ(check.exit_code, 0) << what << ":\n" << check.out << check.err;
  }
}

}  // namespace
}  // namespace meshplug::integration
