// Proxyless gRPC with clients no one here wrote: gRPC's own xDS resolver and balancers in
// Debian's libgrpc++ (integration/xds_grpc_client.cc) and python3-grpcio, configured only
// by the bootstrap `meshctl bootstrap grpc` writes, calling python3-grpcio servers that
// are Workloads of the mesh's Services. No agent is in the path.
#include <gtest/gtest.h>

#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "integration/harness/agent_process.h"
#include "integration/harness/control_plane_process.h"
#include "integration/harness/process.h"

namespace meshplug::integration {
namespace {

using harness::ControlPlaneProcess;
using harness::Eventually;
using harness::Process;
using std::chrono::milliseconds;

constexpr char kPython[] = "/usr/bin/python3";
constexpr char kEcho[] = "integration/grpc_echo.py";
constexpr char kClient[] = "integration/xds_grpc_client";
constexpr char kTarget[] = "xds:///echo.demo:50051";

int64_t NowMs() {
  return std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// One line of xds_grpc_client: "<ms> OK <reply>" or "<ms> <CODE> <details>".
struct Call {
  int64_t at_ms = 0;
  std::string code;
  std::string reply;  // the reply, or the error's details
};

std::vector<Call> Calls(const std::string& log) {
  std::vector<Call> calls;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    Call c;
    if (!(words >> c.at_ms >> c.code)) continue;  // gRPC's own log lines, "done"
    std::getline(words >> std::ws, c.reply);
    calls.push_back(c);
  }
  return calls;
}

// Whether the client's last call so far ended with `code` after `after_ms`.
bool LastCallIs(const Process& client, std::string_view code, int64_t after_ms = 0) {
  const auto calls = Calls(client.Log());
  return !calls.empty() && calls.back().code == code && calls.back().at_ms > after_ms;
}

// grpc_echo.py xds's summary: "NAME COUNT" lines and "failed N".
std::map<std::string, int> PythonCounts(const std::string& out) {
  std::map<std::string, int> counts;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string name;
    int n = 0;
    if (words >> name >> n) counts[name] = n;
  }
  return counts;
}

std::map<std::string, int> OkCounts(const std::vector<Call>& calls) {
  std::map<std::string, int> counts;
  for (const auto& c : calls) {
    if (c.code == "OK") ++counts[c.reply];
  }
  return counts;
}

class ProxylessGrpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = harness::TempDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    for (const char* name : {"echo-1", "echo-2", "echo-3"}) {
      servers_[name] = Process::Start({kPython, kEcho, "serve", name}, dir_ + "/" + name + ".log");
      const auto line = servers_[name]->WaitForLog("port ", milliseconds(20000));
      ASSERT_TRUE(line) << servers_[name]->Log();
      ports_[name] = harness::PortAfter(*line, "port ");
    }
    // A short grace period: an agent that stops is gone within seconds.
    cp_ = std::make_unique<ControlPlaneProcess>(
        dir_, std::vector<std::string>{"--plaintext_xds_listen=127.0.0.1:0", "--agent_grace_s=1"});
    ASSERT_EQ(cp_->Start(), "");
    Apply(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n---\n"
        "apiVersion: v1\nkind: Service\nmetadata: {name: echo, namespace: demo}\n"
        "spec: {ports: [{port: 50051, protocol: grpc}], selector: {app: echo}}\n---\n" +
        Workload("echo-1", "echo-1", "{app: echo, version: v1}") + "---\n" +
        Workload("echo-2", "echo-2", "{app: echo, version: v2}"));
    bootstrap_ = Bootstrap("client");
    // Its Workload, made without an address: a client, never an endpoint.
    auto wl = cp_->Meshctl({"get", "workload", "client", "-n", "demo", "-o", "yaml"});
    ASSERT_EQ(wl.exit_code, 0) << wl.err;
    EXPECT_EQ(wl.out.find("address"), std::string::npos) << wl.out;
  }

  // `meshctl bootstrap grpc demo/NAME`, written to a file; its path.
  std::string Bootstrap(const std::string& name) {
    auto r = cp_->Meshctl({"bootstrap", "grpc", "demo/" + name});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const std::string path = dir_ + "/" + name + ".bootstrap.json";
    std::ofstream(path) << r.out;
    return path;
  }

  // A Workload for the server `server`, registered by hand (no agent in front of it).
  std::string Workload(const std::string& name, const std::string& server, const std::string& labels) {
    return "apiVersion: meshplug.io/v1\nkind: Workload\nmetadata: {name: " + name +
           ", namespace: demo, labels: " + labels + "}\nspec: {address: 127.0.0.1, inboundPort: " +
           std::to_string(ports_[server]) + "}\n";
  }

  void Apply(const std::string& manifest) {
    auto r = cp_->Meshctl({"apply", "-f", "-"}, manifest);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  // Runs the C++ client to completion: `calls` calls of `method`.
  std::vector<Call> RunClient(const std::string& method, const std::string& request, int calls,
                              std::vector<std::string> flags = {}) {
    std::vector<std::string> argv = {kClient, kTarget, method, request, std::to_string(calls)};
    argv.insert(argv.end(), flags.begin(), flags.end());
    auto r = harness::Run(argv, "", milliseconds(90000), {"GRPC_XDS_BOOTSTRAP=" + bootstrap_});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Calls(r.out);
  }

  // The C++ client in the background, calling Who every `interval_ms` (bounded in count and
  // time), with `bootstrap` (default: demo/client's).
  std::unique_ptr<Process> StartClient(int interval_ms, bool wait_for_ready, std::string bootstrap = "") {
    std::vector<std::string> argv = {kClient, kTarget, "/demo.Echo/Who", "x", "6000",
                                     "--interval_ms=" + std::to_string(interval_ms), "--timeout_ms=2000",
                                     "--max_seconds=60"};
    if (wait_for_ready) argv.push_back("--wait_for_ready");
    return Process::Start(argv, dir_ + "/client.log",
                          {"GRPC_XDS_BOOTSTRAP=" + (bootstrap.empty() ? bootstrap_ : bootstrap)});
  }

  std::string dir_, bootstrap_;
  std::map<std::string, std::unique_ptr<Process>> servers_;
  std::map<std::string, int> ports_;
  std::unique_ptr<ControlPlaneProcess> cp_;
};

TEST_F(ProxylessGrpcTest, CallsSpreadAcrossTheWorkloadsAndTheClientShowsInProxyStatus) {
  // Listed like an agent while it runs, beside the workload's own row: SotW, Envoy's four
  // types ACKed.
  {
    auto client = StartClient(5, /*wait_for_ready=*/true);
    std::string status;
    ASSERT_TRUE(Eventually([&] {
      status = cp_->Meshctl({"proxy", "status"}).out;
      const auto row = harness::ProxyStatusRow(status, "demo/client#xds");
      return row.size() > 6 && row[1] == "true" && row[2] == "sotw" && row[6] == "4/4";
    }, milliseconds(20000))) << status;
  }
  const auto calls = RunClient("/demo.Echo/Who", "x", 300, {"--wait_for_ready"});
  ASSERT_EQ(calls.size(), 300u);
  auto counts = OkCounts(calls);
  // Round robin: an even share each (the first calls may go to whichever connected first).
  EXPECT_NEAR(counts["echo-1"], 150, 10);
  EXPECT_NEAR(counts["echo-2"], 150, 10);

  // The same from python3-grpcio's xDS client.
  auto py = harness::Run({kPython, kEcho, "xds", kTarget, "100"}, "", milliseconds(90000),
                         {"GRPC_XDS_BOOTSTRAP=" + bootstrap_});
  ASSERT_EQ(py.exit_code, 0) << py.err;
  const auto py_counts = PythonCounts(py.out);
  EXPECT_NEAR(py_counts.count("echo-1") ? py_counts.at("echo-1") : 0, 50, 10) << py.out;
  EXPECT_NEAR(py_counts.count("echo-2") ? py_counts.at("echo-2") : 0, 50, 10) << py.out;
  EXPECT_EQ(py_counts.count("failed") ? py_counts.at("failed") : -1, 0) << py.out;
}

TEST_F(ProxylessGrpcTest, AddingAndRemovingAWorkloadMovesCallsWithinASecondWithoutAFailedCall) {
  auto client = StartClient(5, /*wait_for_ready=*/true);
  ASSERT_TRUE(Eventually([&] { return OkCounts(Calls(client->Log())).size() == 2; }, milliseconds(20000)))
      << client->Log();

  const int64_t added = NowMs();
  Apply(Workload("echo-3", "echo-3", "{app: echo}"));
  ASSERT_TRUE(Eventually([&] { return OkCounts(Calls(client->Log())).count("echo-3"); }, milliseconds(10000)))
      << client->Log();
  int64_t first_to_new = 0;
  for (const auto& c : Calls(client->Log())) {
    if (c.reply == "echo-3" && !first_to_new) first_to_new = c.at_ms;
  }
  EXPECT_LE(first_to_new - added, 1000) << "the new workload got its first call after " << first_to_new - added << " ms";
  std::cout << "first call to the added workload " << first_to_new - added << " ms after meshctl apply\n";

  const int64_t removed = NowMs();
  ASSERT_EQ(cp_->Meshctl({"delete", "workload", "echo-1", "-n", "demo"}).exit_code, 0);
  // Calls keep going for two more seconds; none after the first second reaches echo-1.
  ASSERT_TRUE(Eventually([&] {
    const auto calls = Calls(client->Log());
    return !calls.empty() && calls.back().at_ms > removed + 2000;
  }, milliseconds(20000))) << client->Log();
  const std::string log = client->Log();
  client.reset();
  int64_t last_to_removed = 0;
  int failed = 0;
  for (const auto& c : Calls(log)) {
    if (c.code != "OK") ++failed;
    if (c.reply == "echo-1") last_to_removed = c.at_ms;
  }
  EXPECT_EQ(failed, 0) << log;
  EXPECT_LE(last_to_removed - removed, 1000) << "the removed workload got calls " << last_to_removed - removed
                                             << " ms after its removal";
  std::cout << "last call to the removed workload " << last_to_removed - removed << " ms after meshctl delete; "
            << Calls(log).size() << " calls, " << failed << " failed\n";
}

TEST_F(ProxylessGrpcTest, AWeightedSplitOfEightyTwentyShowsInTheCallCounts) {
  Apply(
      "apiVersion: v1\nkind: Service\nmetadata: {name: echo-v1, namespace: demo}\n"
      "spec: {ports: [{port: 50051, protocol: grpc}], selector: {version: v1}}\n---\n"
      "apiVersion: v1\nkind: Service\nmetadata: {name: echo-v2, namespace: demo}\n"
      "spec: {ports: [{port: 50051, protocol: grpc}], selector: {version: v2}}\n---\n"
      "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: split, namespace: demo}\n"
      "spec:\n  parentRefs: [{kind: Service, name: echo, port: 50051}]\n"
      "  rules:\n  - backendRefs: [{name: echo-v1, port: 50051, weight: 80}, {name: echo-v2, port: 50051, weight: 20}]\n");
  // The split is in force once a new client's calls are clearly not 50/50; then 2,000 count.
  ASSERT_TRUE(Eventually([&] { return OkCounts(RunClient("/demo.Echo/Who", "x", 100, {"--wait_for_ready"}))["echo-1"] > 65; },
                         milliseconds(20000)));
  const auto calls = RunClient("/demo.Echo/Who", "x", 2000, {"--wait_for_ready"});
  ASSERT_EQ(calls.size(), 2000u);
  const auto counts = OkCounts(calls);
  const double v1 = counts.count("echo-1") ? counts.at("echo-1") / 2000.0 : 0;
  std::cout << "split: echo-1 (v1) " << v1 * 100 << "% of 2000 calls\n";
  EXPECT_NEAR(v1, 0.80, 0.05) << "echo-1 (v1) " << counts.count("echo-1") << ", echo-2 (v2) " << counts.count("echo-2");

  auto py = harness::Run({kPython, kEcho, "xds", kTarget, "2000"}, "", milliseconds(90000),
                         {"GRPC_XDS_BOOTSTRAP=" + bootstrap_});
  ASSERT_EQ(py.exit_code, 0) << py.err;
  const auto py_counts = PythonCounts(py.out);
  EXPECT_NEAR((py_counts.count("echo-1") ? py_counts.at("echo-1") : 0) / 2000.0, 0.80, 0.05) << py.out;
  EXPECT_EQ(py_counts.count("failed") ? py_counts.at("failed") : -1, 0) << py.out;

  // The same HTTPRoute steers a meshplug agent's calls: one translation serves both.
  std::string error;
  auto agent = harness::StartJoinedAgent(*cp_, dir_, "demo", "caller", "caller", &error);
  ASSERT_TRUE(agent) << error;
  const std::string outbound = "127.0.0.1:" + std::to_string(agent->outbound);
  // It answers once it has its configuration.
  ASSERT_TRUE(Eventually([&] {
    return harness::Run({kPython, kEcho, "ping", outbound, "echo.demo:50051", "Who"}, "", milliseconds(10000)).out ==
           "OK\n";
  }, milliseconds(20000)));
  auto through = harness::Run({kPython, kEcho, "count", outbound, "echo.demo:50051", "2000"}, "", milliseconds(90000));
  ASSERT_EQ(through.exit_code, 0) << through.err;
  const auto agent_counts = PythonCounts(through.out);
  EXPECT_NEAR((agent_counts.count("echo-1") ? agent_counts.at("echo-1") : 0) / 2000.0, 0.80, 0.05) << through.out;
  EXPECT_EQ(agent_counts.count("failed") ? agent_counts.at("failed") : -1, 0) << through.out;
}

TEST_F(ProxylessGrpcTest, ARouteTimeoutTurnsASlowMethodIntoDeadlineExceeded) {
  Apply(
      "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: slow, namespace: demo}\n"
      "spec:\n  parentRefs: [{name: echo}]\n"
      "  rules:\n  - matches: [{path: {type: Exact, value: /demo.Echo/Slow}}]\n"
      "    backendRefs: [{name: echo, port: 50051}]\n    timeouts: {request: 300ms}\n");
  // Slow sleeps 2 s; the call's own deadline is 5 s.
  ASSERT_TRUE(Eventually([&] {
    const auto calls = RunClient("/demo.Echo/Slow", "2", 1, {"--wait_for_ready", "--timeout_ms=5000"});
    return calls.size() == 1 && calls[0].code == "DEADLINE_EXCEEDED";
  }, milliseconds(20000)));
  const int64_t start = NowMs();
  const auto calls = RunClient("/demo.Echo/Slow", "2", 1, {"--wait_for_ready", "--timeout_ms=5000"});
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].code, "DEADLINE_EXCEEDED");
  EXPECT_LT(calls[0].at_ms - start, 1900) << "the route's 300 ms did not cut the call short";
  // Other methods take the default route, without that timeout.
  const auto others = RunClient("/demo.Echo/Who", "x", 10, {"--wait_for_ready"});
  EXPECT_EQ(OkCounts(others)["echo-1"] + OkCounts(others)["echo-2"], 10);
}

TEST_F(ProxylessGrpcTest, ARouteRetryMakesFlakyCallsSucceed) {
  // Flaky fails every other call on each server: without retries some calls fail.
  auto without = RunClient("/demo.Echo/Flaky", "x", 20, {"--wait_for_ready"});
  ASSERT_EQ(without.size(), 20u);
  EXPECT_LT(OkCounts(without)["echo-1"] + OkCounts(without)["echo-2"], 20);
  Apply(
      "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: retry, namespace: demo}\n"
      "spec:\n  parentRefs: [{name: echo}]\n"
      "  rules:\n  - backendRefs: [{name: echo, port: 50051}]\n    retry: {attempts: 2, backoff: 10ms}\n");
  ASSERT_TRUE(Eventually([&] {
    const auto calls = RunClient("/demo.Echo/Flaky", "x", 20, {"--wait_for_ready"});
    return OkCounts(calls)["echo-1"] + OkCounts(calls)["echo-2"] == 20;
  }, milliseconds(20000)));
}

// Fault injection (meshplug's HTTPRoute extension): gRPC's own fault filter delays and
// aborts, and an agent does the same from the same HTTPRoute.
TEST_F(ProxylessGrpcTest, ARoutesFaultsDelayAndAbortCalls) {
  Apply(
      "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: faults, namespace: demo}\n"
      "spec:\n  parentRefs: [{name: echo}]\n"
      "  rules:\n  - matches: [{path: {type: Exact, value: /demo.Echo/Who}}]\n"
      "    backendRefs: [{name: echo, port: 50051}]\n    fault: {abort: {httpStatus: 503, percent: 100}}\n"
      "  - matches: [{path: {type: Exact, value: /demo.Echo/Unary}}]\n"
      "    backendRefs: [{name: echo, port: 50051}]\n    fault: {delay: {fixedDelay: 400ms, percent: 100}}\n");
  ASSERT_TRUE(Eventually([&] {
    const auto calls = RunClient("/demo.Echo/Who", "x", 1, {"--wait_for_ready"});
    return calls.size() == 1 && calls[0].code == "UNAVAILABLE";
  }, milliseconds(20000)));
  const int64_t start = NowMs();
  const auto delayed = RunClient("/demo.Echo/Unary", "hello", 3, {"--wait_for_ready"});
  ASSERT_EQ(delayed.size(), 3u);
  for (const auto& c : delayed) EXPECT_EQ(c.code, "OK") << c.reply;
  EXPECT_GE(delayed.back().at_ms - start, 3 * 400) << "three calls delayed 400 ms each";

  std::string error;
  auto agent = harness::StartJoinedAgent(*cp_, dir_, "demo", "caller", "caller", &error);
  ASSERT_TRUE(agent) << error;
  const std::string outbound = "127.0.0.1:" + std::to_string(agent->outbound);
  // Configured once a call that is only delayed goes through; it took the delay.
  ASSERT_TRUE(Eventually([&] {
    return harness::Run({kPython, kEcho, "ping", outbound, "echo.demo:50051", "Unary"}, "", milliseconds(10000)).out ==
           "OK\n";
  }, milliseconds(20000)));
  const int64_t before = NowMs();
  ASSERT_EQ(harness::Run({kPython, kEcho, "ping", outbound, "echo.demo:50051", "Unary"}, "", milliseconds(10000)).out,
            "OK\n");
  EXPECT_GE(NowMs() - before, 400);
  const auto aborted = harness::Run({kPython, kEcho, "ping", outbound, "echo.demo:50051", "Who"}, "", milliseconds(10000));
  EXPECT_EQ(aborted.out, "UNAVAILABLE fault injected\n");
}

TEST_F(ProxylessGrpcTest, DeletingTheServiceFailsCallsWithUnavailableUntilItReturns) {
  auto client = StartClient(20, /*wait_for_ready=*/false);
  ASSERT_TRUE(Eventually([&] { return OkCounts(Calls(client->Log())).size() == 2; }, milliseconds(20000)))
      << client->Log();
  const std::string service =
      "apiVersion: v1\nkind: Service\nmetadata: {name: echo, namespace: demo}\n"
      "spec: {ports: [{port: 50051, protocol: grpc}], selector: {app: echo}}\n";
  ASSERT_EQ(cp_->Meshctl({"delete", "service", "echo", "-n", "demo"}).exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return LastCallIs(*client, "UNAVAILABLE"); }, milliseconds(20000))) << client->Log();
  const int64_t restored = NowMs();
  Apply(service);
  ASSERT_TRUE(Eventually([&] { return LastCallIs(*client, "OK", restored); }, milliseconds(20000))) << client->Log();

  // The same with the port taken away and given back (the Service itself stays).
  std::string moved = service;
  moved.replace(moved.find("50051"), 5, "50052");
  Apply(moved);
  ASSERT_TRUE(Eventually([&] { return LastCallIs(*client, "UNAVAILABLE"); }, milliseconds(20000))) << client->Log();
  const int64_t back = NowMs();
  Apply(service);
  ASSERT_TRUE(Eventually([&] { return LastCallIs(*client, "OK", back); }, milliseconds(20000))) << client->Log();
}

TEST_F(ProxylessGrpcTest, AResourceTheClientRefusesShowsItsErrorInProxyStatus) {
  const auto calls = RunClient("/demo.Echo/Who", "x", 1, {"--wait_for_ready"});
  ASSERT_EQ(calls.size(), 1u);
  auto client = StartClient(20, /*wait_for_ready=*/true);
  ASSERT_TRUE(Eventually([&] { return !OkCounts(Calls(client->Log())).empty(); }, milliseconds(20000)));
  // A second Workload at echo-1's address and port: agents call it twice as often, gRPC
  // refuses an endpoint listed twice.
  Apply(Workload("echo-1-again", "echo-1", "{app: echo}"));
  std::string status;
  ASSERT_TRUE(Eventually([&] {
    status = cp_->Meshctl({"proxy", "status"}).out;
    return harness::ProxyStatusLine(status, "demo/client#xds").find("duplicate endpoint address") != std::string::npos;
  }, milliseconds(20000))) << status;
  EXPECT_NE(harness::ProxyStatusLine(status, "demo/client#xds").find("ClusterLoadAssignment"), std::string::npos)
      << status;
  // The client keeps what it had: calls go on.
  const size_t before = Calls(client->Log()).size();
  ASSERT_TRUE(Eventually([&] { return Calls(client->Log()).size() > before + 10; }, milliseconds(10000)));
  for (const auto& c : Calls(client->Log())) EXPECT_EQ(c.code, "OK") << c.reply;
}

// A proxyless client of a workload that has an agent is listed apart and leaves the
// agent's registration, status and certificate alone.
TEST_F(ProxylessGrpcTest, ATokenClientBesideTheWorkloadsAgentLeavesTheAgentAlone) {
  std::string error;
  auto agent = harness::StartJoinedAgent(*cp_, dir_, "demo", "caller", "caller", &error);
  ASSERT_TRUE(agent) << error;
  std::string status;
  auto caller_row = [&] { return harness::ProxyStatusRow(status, "demo/caller"); };
  ASSERT_TRUE(Eventually([&] {
    status = cp_->Meshctl({"proxy", "status"}).out;
    return caller_row().size() > 6 && caller_row()[1] == "true" && caller_row()[6] == "5/5";
  }, milliseconds(20000))) << status;
  const auto before = caller_row();
  const std::string bootstrap = Bootstrap("caller");
  auto r = harness::Run({kClient, kTarget, "/demo.Echo/Who", "x", "5", "--wait_for_ready"}, "", milliseconds(30000),
                        {"GRPC_XDS_BOOTSTRAP=" + bootstrap});
  // Every call answered (which backends: gRPC's round_robin picks among the connections
  // already up, so 5 quick calls may all reach one; the tests above wait for both).
  auto counts = OkCounts(Calls(r.out));
  ASSERT_EQ(counts["echo-1"] + counts["echo-2"], 5) << r.out;
  status = cp_->Meshctl({"proxy", "status"}).out;
  EXPECT_EQ(caller_row(), before) << status;  // identity, certificate, snapshot: the agent's
  // The client's row goes with its stream.
  ASSERT_TRUE(Eventually([&] {
    status = cp_->Meshctl({"proxy", "status"}).out;
    return harness::ProxyStatusLine(status, "demo/caller#xds").empty();
  }, milliseconds(10000))) << status;
  auto wl = cp_->Meshctl({"get", "workload", "caller", "-n", "demo", "-o", "yaml"});
  EXPECT_NE(wl.out.find("address: 127.0.0.1"), std::string::npos) << wl.out;
  // Labels are the Workload's, not the token's to bind.
  auto labels = cp_->Meshctl({"bootstrap", "grpc", "demo/caller", "--labels", "app=x"});
  EXPECT_NE(labels.exit_code, 0);
  EXPECT_NE(labels.err.find("--labels"), std::string::npos) << labels.err;

  // The agent stops while its client still runs: past the grace period its Workload stays,
  // no longer an endpoint, and the client keeps following the mesh.
  auto client = StartClient(20, /*wait_for_ready=*/true, bootstrap);
  ASSERT_TRUE(Eventually([&] { return OkCounts(Calls(client->Log())).size() == 2; }, milliseconds(20000)));
  agent->process.reset();
  ASSERT_TRUE(Eventually([&] {
    wl = cp_->Meshctl({"get", "workload", "caller", "-n", "demo", "-o", "yaml"});
    return wl.exit_code == 0 && wl.out.find("address") == std::string::npos;
  }, milliseconds(20000))) << wl.out;
  EXPECT_EQ(wl.out.find("registered-by"), std::string::npos) << wl.out;
  Apply(Workload("echo-3", "echo-3", "{app: echo}"));
  ASSERT_TRUE(Eventually([&] { return OkCounts(Calls(client->Log())).count("echo-3"); }, milliseconds(10000)))
      << client->Log();
}

// What a stream without a valid xDS token for the node it names gets: the reason in the
// control plane's log, and no configuration.
TEST_F(ProxylessGrpcTest, StreamsWithoutTheWorkloadsXdsTokenAreRefused) {
  std::ifstream in(bootstrap_);
  std::stringstream text;
  text << in.rdbuf();
  const std::string good = text.str();
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  const size_t token_at = good.find("\"token\": \"") + 10;
  const std::string token = good.substr(token_at, good.find('"', token_at) - token_at);
  auto join = cp_->Meshctl({"workload", "token", "demo/client"});
  ASSERT_EQ(join.exit_code, 0) << join.err;
  const std::string join_token = join.out.substr(0, join.out.find('\n'));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {with(token, ""), "an xDS token in node.metadata.token"},
      {with(token, token + "x"), "node.metadata.token: "},
      {with(token, join_token), "node.metadata.token is a join token, not an xDS token"},
      {with("\"id\": \"client\"", "\"id\": \"echo-1\""),
       "this xDS token is for demo/client; it may not receive the configuration of demo/echo-1"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string path = dir_ + "/bad-" + std::to_string(i) + ".json";
    std::ofstream(path) << cases[i].first;
    auto r = harness::Run({kClient, kTarget, "/demo.Echo/Who", "x", "1", "--timeout_ms=1000"}, "", milliseconds(30000),
                          {"GRPC_XDS_BOOTSTRAP=" + path});
    const auto calls = Calls(r.out);
    ASSERT_EQ(calls.size(), 1u) << r.out << r.err;
    EXPECT_NE(calls[0].code, "OK") << cases[i].second;
    EXPECT_TRUE(cp_->process().WaitForLog(cases[i].second, milliseconds(10000))) << cases[i].second;
  }
}

}  // namespace
}  // namespace meshplug::integration
