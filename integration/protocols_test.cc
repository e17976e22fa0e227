// HTTP/2 and WebSocket clients no one here wrote, through two agents (real processes,
// strict mTLS between them): h2load and curl with HTTP/2 prior knowledge, and a
// python3-websockets client and server.
#include <gtest/gtest.h>

#include "agent/testing/test_support.h"
#include "integration/harness/agent_process.h"
#include "integration/harness/control_plane_process.h"
#include "integration/harness/process.h"

namespace meshplug::integration {
namespace {

using agent::testing::Client;
using agent::testing::TestUpstream;
using harness::AgentProcess;
using harness::ControlPlaneProcess;
using harness::Eventually;
using harness::Process;
using std::chrono::milliseconds;

class ProtocolsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = harness::TempDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    websocket_ = Process::Start({"/usr/bin/python3", "integration/websocket_echo.py", "serve"}, dir_ + "/websocket.log");
    const std::optional<std::string> line = websocket_->WaitForLog("port ", milliseconds(20000));
    ASSERT_TRUE(line) << websocket_->Log();
    cp_ = std::make_unique<ControlPlaneProcess>(dir_);
    ASSERT_EQ(cp_->Start(), "");
    const std::string manifest =
        "apiVersion: config.openservicemesh.io/v1alpha2\nkind: MeshConfig\nmetadata: {name: osm-mesh-config}\n"
        "spec:\n  traffic: {mtlsMode: strict}\n---\n"
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n---\n"
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: demo}\n"
        "spec: {ports: [{port: 8080, targetPort: " + std::to_string(app_.port()) + ", protocol: http}], "
        "selector: {app: web}}\n---\n"
        "apiVersion: v1\nkind: Service\nmetadata: {name: chat, namespace: demo}\n"
        "spec: {ports: [{port: 8090, targetPort: " + std::to_string(harness::PortAfter(*line, "port ")) +
        ", protocol: http}], selector: {app: web}}\n";
    auto r = cp_->Meshctl({"apply", "-f", "-"}, manifest);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::string error;
    auto server = harness::StartJoinedAgent(*cp_, dir_, "demo", "web", "web", &error);
    ASSERT_TRUE(server) << error;
    server_ = std::move(*server);
    auto client = harness::StartJoinedAgent(*cp_, dir_, "demo", "client", "client", &error);
    ASSERT_TRUE(client) << error;
    client_ = std::move(*client);
    // Both agents have their snapshots once a request goes through.
    ASSERT_TRUE(Eventually(
        [&] {
          auto got = Client(client_.outbound, milliseconds(2000)).Get("web.demo:8080", "/");
          return got && got->result_int() == 200;
        },
        milliseconds(30000)));
  }

  std::string Url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(client_.outbound) + path; }

  TestUpstream app_{"web"};
  std::string dir_;
  std::unique_ptr<Process> websocket_;
  std::unique_ptr<ControlPlaneProcess> cp_;
  AgentProcess server_, client_;
};

TEST_F(ProtocolsTest, CurlAndH2loadSpeakHttp2ToTheAgent) {
  auto curl = harness::Run({"/usr/bin/curl", "-s", "--max-time", "10", "--http2-prior-knowledge", "-H",
                            "Host: web.demo:8080", "-w", " %{http_version} %{http_code}", Url("/")});
  EXPECT_EQ(curl.out, "web 2 200");
  // 5,000 requests on 4 connections, 20 streams at a time on each.
  auto load = harness::Run({"/usr/bin/h2load", "-n", "5000", "-c", "4", "-m", "20", "-H", ":authority: web.demo:8080",
                            Url("/")},
                           "", milliseconds(120000));
  EXPECT_NE(load.out.find("5000 succeeded, 0 failed, 0 errored"), std::string::npos) << load.out;
  EXPECT_NE(load.out.find("status codes: 5000 2xx"), std::string::npos) << load.out;
  EXPECT_GE(app_.requests(), 5001);
  // Between the agents, 80 requests at a time went over a few multiplexed mTLS connections
  // (at most one per worker of the calling agent), not one per request in flight.
  EXPECT_LE(server_.Metric("meshplug_agent_tls_handshakes_total", "result=\"ok\""), 2);
}

TEST_F(ProtocolsTest, WebSocketEchoThroughTwoAgents) {
  auto run = harness::Run({"/usr/bin/python3", "integration/websocket_echo.py", "call", "127.0.0.1",
                           std::to_string(client_.outbound), "chat.demo:8090"},
                          "", milliseconds(60000));
  EXPECT_EQ(run.out, "texts: one,two,three\nbinary: 1048576 same\n") << run.err;
  EXPECT_GE(client_.Metric("meshplug_http_upgrades_total"), 1);
  EXPECT_GE(server_.Metric("meshplug_http_upgrades_total"), 1);
}

}  // namespace
}  // namespace meshplug::integration
