// gRPC through the mesh with programs no one here wrote: a client and a server on Debian's
// python3-grpcio (gRPC's own HTTP/2 stack) in two workloads, whose agents (real processes,
// strict mTLS) carry the calls over HTTP/2 between them and to the app, with a Lua plugin
// that denies one method.
#include <gtest/gtest.h>

#include <map>
#include <sstream>

#include "integration/harness/agent_process.h"
#include "integration/harness/control_plane_process.h"
#include "integration/harness/process.h"

namespace meshplug::integration {
namespace {

using harness::AgentProcess;
using harness::ControlPlaneProcess;
using harness::Eventually;
using harness::Process;
using std::chrono::milliseconds;

constexpr char kPython[] = "/usr/bin/python3";
constexpr char kScript[] = "integration/grpc_echo.py";
constexpr char kAuthority[] = "echo.demo:50051";

class GrpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = harness::TempDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    server_ = Process::Start({kPython, kScript, "serve"}, dir_ + "/server.log");
    const std::optional<std::string> line = server_->WaitForLog("port ", milliseconds(20000));
    ASSERT_TRUE(line) << server_->Log();
    const int app_port = harness::PortAfter(*line, "port ");
    cp_ = std::make_unique<ControlPlaneProcess>(dir_);
    ASSERT_EQ(cp_->Start(), "");
    const std::string manifest =
        "apiVersion: config.openservicemesh.io/v1alpha2\nkind: MeshConfig\nmetadata: {name: osm-mesh-config}\n"
        "spec:\n  traffic: {mtlsMode: strict}\n  featureFlags: {enablePluginPolicy: true}\n---\n"
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n---\n"
        "apiVersion: v1\nkind: Service\nmetadata: {name: echo, namespace: demo}\n"
        "spec: {ports: [{port: 50051, targetPort: " + std::to_string(app_port) +
        ", protocol: grpc}], selector: {app: echo}}\n---\n"
        // Written for HTTP/1.1 requests: path and respond work the same on gRPC's HTTP/2.
        "apiVersion: plugin.flomesh.io/v1alpha1\nkind: Plugin\nmetadata: {name: deny-forbidden}\n"
        "spec:\n  priority: 150\n  script: |\n"
        "    function on_request(req, ctx)\n"
        "      if req.path == \"/demo.Echo/Forbidden\" then respond(403, {}, \"Forbidden is not for clients\") end\n"
        "    end\n---\n"
        "apiVersion: plugin.flomesh.io/v1alpha1\nkind: PluginChain\nmetadata: {name: deny-chain, namespace: demo}\n"
        "spec:\n  chains: [{name: outbound-http, plugins: [deny-forbidden]}]\n"
        "  selectors: {podSelector: {matchLabels: {app: client}}}\n";
    auto r = cp_->Meshctl({"apply", "-f", "-"}, manifest);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::string error;
    auto echo = harness::StartJoinedAgent(*cp_, dir_, "demo", "echo", "echo", &error);
    ASSERT_TRUE(echo) << error;
    echo_ = std::move(*echo);
    auto client = harness::StartJoinedAgent(*cp_, dir_, "demo", "client", "client", &error);
    ASSERT_TRUE(client) << error;
    client_ = std::move(*client);
  }

  std::string Target() const { return "127.0.0.1:" + std::to_string(client_.outbound); }

  // One unary call to `method` through the client's agent: its gRPC status name (and the
  // error's details).
  std::string Ping(const std::string& method) {
    auto r = harness::Run({kPython, kScript, "ping", Target(), kAuthority, method}, "", milliseconds(10000));
    return r.out.empty() ? "" : r.out.substr(0, r.out.find('\n'));
  }

  std::string dir_;
  std::unique_ptr<Process> server_;
  std::unique_ptr<ControlPlaneProcess> cp_;
  AgentProcess echo_, client_;
};

TEST_F(GrpcTest, EveryCallKindDeadlinesCancellationAndAPluginsDenialThroughTwoAgents) {
  // Both agents have their snapshots (and the plugin) once a call goes through and the
  // denied method is denied.
  std::string unary, forbidden;
  ASSERT_TRUE(Eventually(
      [&] {
        unary = Ping("Unary");
        forbidden = Ping("Forbidden");
        return unary == "OK" && forbidden.starts_with("PERMISSION_DENIED");
      },
      milliseconds(30000)))
      << "Unary: " << unary << ", Forbidden: " << forbidden << " curl: "
      << harness::Run({"/usr/bin/curl", "-sv", "--http2-prior-knowledge", "http://" + Target() + "/demo.Echo/Unary", "-H", "Host: echo.demo:50051"}).err;
  auto run = harness::Run({kPython, kScript, "call", Target(), kAuthority}, "", milliseconds(180000));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::map<std::string, std::string> results;
  std::istringstream lines(run.out);
  for (std::string line; std::getline(lines, line);) {
    const size_t colon = line.find(": ");
    if (colon != std::string::npos) results[line.substr(0, colon)] = line.substr(colon + 2);
  }
  EXPECT_EQ(results["unary"], "hello");
  EXPECT_EQ(results["server_stream"], "104857600");  // 100 MiB, whole
  EXPECT_EQ(results["client_stream"], "1000000");
  EXPECT_EQ(results["bidi"], "100");
  EXPECT_EQ(results["deadline"].substr(0, 17), "DEADLINE_EXCEEDED");
  EXPECT_EQ(results["cancel"], "CANCELLED");
  // The cancellation crossed both agents and reached the server.
  EXPECT_EQ(results["server_cancelled"], "1");
  EXPECT_EQ(results["forbidden"], "PERMISSION_DENIED Forbidden is not for clients");

  // The agents count gRPC statuses: the denial on the client's side, successes on the server's.
  EXPECT_GE(client_.Metric("meshplug_grpc_responses_total", "grpc_status=\"7\""), 2);
  EXPECT_GE(echo_.Metric("meshplug_grpc_responses_total", "grpc_status=\"0\""), 5);
  // With who called whom, as the request metrics have it.
  EXPECT_EQ(client_.Metric("meshplug_grpc_responses_total", "dst_namespace=\"demo\",dst_service=\"echo\""),
            client_.Metric("meshplug_grpc_responses_total"));
  // Every call between the agents went over a few multiplexed mTLS connections (at most one
  // per worker of the calling agent), not one per call.
  EXPECT_LE(echo_.Metric("meshplug_agent_tls_handshakes_total", "result=\"ok\""), 2);
}

}  // namespace
}  // namespace meshplug::integration
