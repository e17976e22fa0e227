// Workload identity with real processes (issue 15). Rotating the mesh's CA under traffic:
// two agents in strict mTLS keep serving through start, activate and finish; agents that
// join at each step talk to the others at once; a certificate of the old CA is refused
// after finish; and a control plane restarted after the rotation (serving a certificate
// of the new CA) gets its agents back. Labels a join token binds cannot be changed by the
// agent.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

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
using std::chrono::milliseconds;

class IdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = harness::TempDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    cp_ = std::make_unique<ControlPlaneProcess>(dir_);
    ASSERT_EQ(cp_->Start(), "");
    const std::string mesh =
        "apiVersion: config.openservicemesh.io/v1alpha2\nkind: MeshConfig\nmetadata: {name: osm-mesh-config}\n"
        "spec:\n  traffic: {mtlsMode: strict}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n---\n"
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: demo}\n"
        "spec: {ports: [{port: 8080, targetPort: " + std::to_string(app_.port()) +
        ", protocol: http}], selector: {app: web}}\n";
    auto r = cp_->Meshctl({"apply", "-f", "-"}, mesh);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  AgentProcess Join(const std::string& name, const std::string& app) {
    std::string error;
    auto agent = harness::StartJoinedAgent(*cp_, dir_, "demo", name, app, &error);
    EXPECT_TRUE(agent) << error;
    return agent ? *std::move(agent) : AgentProcess{};
  }

  static bool Reaches(const AgentProcess& client) {
    auto r = Client(client.outbound, milliseconds(2000)).Get("web.demo:8080", "/");
    return r && r->result_int() == 200;
  }

  // `meshctl ca ...`, which must succeed; its output.
  std::string Ca(std::vector<std::string> args) {
    args.insert(args.begin(), "ca");
    auto r = cp_->Meshctl(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }
  // Waits until `ca status` says nothing of agents lagging behind.
  bool CaughtUp() {
    return Eventually([&] { return Ca({"status"}).find("agents") == std::string::npos; }, milliseconds(20000));
  }

  // curl with a client certificate straight to an inbound listener: whether the TLS
  // handshake let it through (any HTTP status).
  bool InboundAccepts(const AgentProcess& server, const std::string& identity_file) {
    auto r = harness::Run({"/usr/bin/curl", "-s", "-k", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
                           "--cert", identity_file, "--key", identity_file, "-H", "Host: web.demo:8080",
                           "https://127.0.0.1:" + std::to_string(server.inbound) + "/"});
    return r.exit_code == 0 && r.out != "000";
  }

  TestUpstream app_{"web"};
  std::string dir_;
  std::unique_ptr<ControlPlaneProcess> cp_;
};

TEST_F(IdentityTest, CaRotationUnderTrafficFailsNoRequestAndEndsTrustInTheOldCa) {
  AgentProcess web = Join("web-1", "web");
  AgentProcess client = Join("client-1", "client");
  ASSERT_TRUE(Eventually([&] { return Reaches(client); }, milliseconds(30000)));
  const std::string before = Ca({"status"});
  EXPECT_NE(before.find("phase: steady"), std::string::npos) << before;

  // Requests through both agents for the whole rotation, bounded in count and time.
  std::atomic<bool> stop{false};
  std::atomic<long> ok{0}, failed{0};
  std::thread traffic([&] {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(3);
    for (int i = 0; i < 200000 && !stop && std::chrono::steady_clock::now() < deadline; ++i) {
      (Reaches(client) ? ok : failed)++;
    }
  });

  EXPECT_NE(Ca({"rotate", "start"}).find("phase: started"), std::string::npos);
  ASSERT_TRUE(CaughtUp());
  AgentProcess joined_started = Join("client-2", "client");  // a certificate of the old CA
  EXPECT_TRUE(Eventually([&] { return Reaches(joined_started); }, milliseconds(20000)));
  const std::string old_identity = dir_ + "/old-ca-identity.pem";
  std::filesystem::copy_file(dir_ + "/client-2.identity.pem", old_identity);
  // As an operator would (activate says to wait for agents that have not confirmed the
  // new roots): the agent that just joined confirms its snapshot.
  ASSERT_TRUE(CaughtUp()) << Ca({"status"});

  const std::string activated = Ca({"rotate", "activate"});
  EXPECT_NE(activated.find("phase: activated"), std::string::npos) << activated;
  ASSERT_TRUE(CaughtUp()) << Ca({"status"});  // every agent renewed with the new CA
  AgentProcess joined_activated = Join("client-3", "client");
  EXPECT_TRUE(Eventually([&] { return Reaches(joined_activated); }, milliseconds(20000)));
  EXPECT_TRUE(InboundAccepts(web, old_identity));  // the old CA is still trusted
  ASSERT_TRUE(CaughtUp()) << Ca({"status"});

  const std::string finished = Ca({"rotate", "finish"});
  EXPECT_NE(finished.find("phase: steady"), std::string::npos) << finished;
  EXPECT_EQ(finished.find("next"), std::string::npos) << finished;
  ASSERT_TRUE(CaughtUp());
  AgentProcess joined_finished = Join("client-4", "client");
  EXPECT_TRUE(Eventually([&] { return Reaches(joined_finished); }, milliseconds(20000)));
  EXPECT_TRUE(Eventually([&] { return !InboundAccepts(web, old_identity); }, milliseconds(10000)));

  stop = true;
  traffic.join();
  std::printf("requests through both agents during the rotation: %ld ok, %ld failed\n", ok.load(), failed.load());
  std::printf("%s", finished.c_str());
  EXPECT_GT(ok.load(), 20);
  EXPECT_EQ(failed.load(), 0) << ok.load() << " requests succeeded";
  EXPECT_EQ(web.Metric("meshplug_agent_certificate_requests_total", "result=\"failed\""), 0);

  // Restarted, the control plane serves a certificate of the new CA: agents that joined
  // under the old one reconnect with the roots their snapshots brought.
  cp_->Stop();
  ASSERT_EQ(cp_->Start(), "");
  EXPECT_TRUE(Eventually(
      [&] {
        auto r = cp_->Meshctl({"proxy", "status"});
        size_t connected = 0;
        for (size_t at = r.out.find(" true "); at != std::string::npos; at = r.out.find(" true ", at + 1)) ++connected;
        return connected == 5;
      },
      milliseconds(30000)))
      << cp_->Meshctl({"proxy", "status"}).out;
  EXPECT_TRUE(Reaches(client));
}

// An agent whose join token bound app=web cannot register as app=client (which would make
// it an endpoint of whatever selects app=client in its namespace); with app=web it joins.
TEST_F(IdentityTest, LabelsBoundByTheJoinTokenCannotBeChangedByTheAgent) {
  auto made = cp_->Meshctl({"workload", "token", "demo/web-2", "--service-account", "web", "--labels", "app=web",
                            "--bootstrap"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  EXPECT_NE(made.out.find("  labels:\n    \"app\": \"web\"\n"), std::string::npos) << made.out;
  const std::string bootstrap = dir_ + "/web-2.bootstrap.yaml";
  std::ofstream(bootstrap) << made.out;
  std::string error;
  {
    auto impostor = harness::StartAgentWithBootstrap(bootstrap, dir_, "web-2", "app=client", &error);
    ASSERT_TRUE(impostor) << error;
    EXPECT_TRUE(cp_->process().WaitForLog(
        "node.metadata.labels {app=client} are not the labels {app=web} that the join token bound to demo/web-2",
        milliseconds(20000)))
        << cp_->process().Log();
    EXPECT_EQ(cp_->Meshctl({"get", "workload", "web-2", "-n", "demo"}).exit_code, 1);
  }
  // The same agent (its identity saved at the join) with the bound labels.
  auto agent = harness::StartAgentWithBootstrap(bootstrap, dir_, "web-2", "app=web", &error);
  ASSERT_TRUE(agent) << error;
  EXPECT_TRUE(Eventually([&] { return cp_->Meshctl({"get", "workload", "web-2", "-n", "demo"}).exit_code == 0; },
                         milliseconds(20000)));
  auto bad = cp_->Meshctl({"workload", "token", "demo/web-3", "--labels", "app"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.err, "error: --labels: \"app\" is not KEY=VALUE\n");
  bad = cp_->Meshctl({"token", "create", "--role", "admin", "--labels", "app=web"});
  EXPECT_EQ(bad.err, "error: flag --labels does not apply to 'token create'\n");
}

}  // namespace
}  // namespace meshplug::integration
