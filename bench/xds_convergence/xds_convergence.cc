// Time from `meshctl apply` to the new chain serving traffic, on one machine.
//
//   bazel run -c opt //bench/xds_convergence -- [--runs 20] [--protocol delta|sotw]
//       [--debounce_ms N]   (the control plane's --debounce_ms; default: its own, 100)
//
// Starts the real control plane and agent (127.0.0.1, kernel-chosen ports) and an HTTP
// upstream behind Service web.demo. A Lua plugin "stamp" on the agent's outbound-http
// chain sets response header x-stamp. Each run applies a new version of the plugin with
// `meshctl apply -f -` (x-stamp: <run>), then sends requests through the agent on one
// kept-alive connection, back to back, until a response carries the new stamp. The time
// from starting meshctl to that response is the run's result: meshctl, the control
// plane's validation and debounce, translation, the xDS push, the agent's Lua compile and
// chain set swap, and the first request on the new set.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "control_plane/testing/mesh_fixtures.h"
#include "agent/testing/test_support.h"
#include "integration/harness/control_plane_process.h"
#include "integration/harness/process.h"

namespace {

using meshplug::agent::testing::Client;
using meshplug::agent::testing::TestUpstream;
using meshplug::Eventually;
using meshplug::integration::harness::Process;
using meshplug::integration::harness::ControlPlaneProcess;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "xds_convergence: %s\n", why.c_str());
  std::exit(1);
}

std::string Field(const std::string& line, const std::string& key) {
  const std::string k = "\"" + key + "\":\"";
  const size_t at = line.find(k);
  if (at == std::string::npos) return "";
  return line.substr(at + k.size(), line.find('"', at + k.size()) - at - k.size());
}

std::string Plugin(int stamp) {
  return meshplug::control_plane::testing::PluginYaml(
      "stamp", 115,
      "function on_response(resp, ctx)\n  resp.headers:set(\"x-stamp\", \"" + std::to_string(stamp) + "\")\nend");
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double rank = p * (v.size() - 1);
  const size_t lo = static_cast<size_t>(rank);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (rank - lo);
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 20;
  std::string protocol = "delta";
  std::string debounce;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--runs") {
      runs = std::max(1, std::atoi(argv[i + 1]));
    } else if (flag == "--protocol") {
      protocol = argv[i + 1];
    } else if (flag == "--debounce_ms") {
      debounce = argv[i + 1];
    } else {
      Die("unknown flag " + flag);
    }
  }
  char tmpl[] = "/tmp/xds-convergence.XXXXXX";
  if (!mkdtemp(tmpl)) Die("cannot create a temporary directory");
  const std::string dir = tmpl;

  TestUpstream upstream("backend");
  ControlPlaneProcess cp(dir, debounce.empty() ? std::vector<std::string>{}
                                                : std::vector<std::string>{"--debounce_ms", debounce});
  if (auto err = cp.Start(); !err.empty()) Die(err);
  auto meshctl = [&](std::vector<std::string> args, const std::string& input = "") {
    auto r = cp.Meshctl(std::move(args), input);
    if (r.exit_code != 0) Die("meshctl: " + r.err);
    return r;
  };
  meshctl({"namespace", "add", "demo"});
  meshctl({"apply", "-f", "-"}, std::string(R"(apiVersion: config.openservicemesh.io/v1alpha2
kind: MeshConfig
metadata: {name: osm-mesh-config}
spec:
  featureFlags: {enablePluginPolicy: true}
  pluginChains:
    inbound-tcp: [{plugin: tls-termination, disable: true}]
    inbound-http: [{plugin: tls-termination, disable: true}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec: {ports: [{port: 8080, protocol: http}], selector: {app: web}}
---
apiVersion: meshplug.io/v1
kind: Workload
metadata: {name: web-backend, namespace: demo, labels: {app: web}}
spec: {address: 127.0.0.1, inboundPort: )") +
                                    std::to_string(upstream.port()) + R"(}
---
)" + meshplug::control_plane::testing::PluginChainYaml("demo", "stamp-chain", "outbound-http", "stamp",
                                                       meshplug::control_plane::testing::AppSelector("client")) +
                                    "---\n" + Plugin(0));

  std::string error;
  const std::string bootstrap = cp.JoinBootstrap("demo", "client-1", "client", &error);
  if (bootstrap.empty()) Die(error);
  auto agent = Process::Start(
      {"agent/agent", "--bind_address=127.0.0.1", "--outbound_port=0", "--inbound_port=0", "--admin_port=0",
       "--bootstrap=" + bootstrap, "--labels=app=client", "--xds_protocol=" + protocol,
       "--snapshot_cache=" + dir + "/agent-snapshot.json", "--identity_file=" + dir + "/agent-identity.pem"},
      dir + "/agent.log");
  auto line = agent ? agent->WaitForLog("agent: listening", milliseconds(20000)) : std::nullopt;
  if (!line) Die("the agent did not start; see " + dir);
  const uint16_t outbound = static_cast<uint16_t>(std::stoi(line->substr(line->find("outbound=") + 9)));

  if (!Eventually(
          [&] {
            auto r = Client(outbound, milliseconds(5000)).Get("web.demo:8080", "/");
            return r && r->result_int() == 200 && (*r)["x-stamp"] == "0";
          },
          milliseconds(30000))) {
    Die("the agent never served the first configuration; see " + dir);
  }
  // One kept-alive connection: each request runs on the chain set current when it starts.
  Client client(outbound, milliseconds(5000));
  auto stamp_of = [&]() -> std::string {
    auto r = client.Get("web.demo:8080", "/");
    if (!r || r->result_int() != 200) Die("a request through the agent failed; see " + dir);
    return std::string((*r)["x-stamp"]);
  };

  // The agent's own measure of the last update: first xDS response received → swapped.
  auto agent_swap_ms = [&]() -> double {
    const std::string log = agent->Log();
    const size_t at = log.rfind("\"msg\":\"configuration applied\"");
    if (at == std::string::npos) return -1;
    const std::string v = Field(log.substr(at, log.find('\n', at) - at), "latency_us");
    return v.empty() ? -1 : std::stod(v) / 1000.0;
  };
  std::printf("run  apply->serving_ms  meshctl_ms  agent_receipt->swap_ms  requests_polled\n");
  std::vector<double> results, swap_ms;
  for (int run = 1; run <= runs; ++run) {
    const std::string want = std::to_string(run);
    const auto t0 = Clock::now();
    meshctl({"apply", "-f", "-"}, Plugin(run));
    const auto applied = Clock::now();
    int polled = 0;
    // Bounded: back-to-back requests for at most 30 s.
    while (stamp_of() != want) {
      ++polled;
      if (Clock::now() - t0 > std::chrono::seconds(30)) Die("run " + want + " did not converge in 30 s");
    }
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    const double meshctl_ms = std::chrono::duration<double, std::milli>(applied - t0).count();
    results.push_back(ms);
    std::printf("%3d  %18.1f  %10.1f  %22.2f  %15d\n", run, ms, meshctl_ms, agent_swap_ms(), polled);
    swap_ms.push_back(agent_swap_ms());
  }
  std::printf(
      "\n%d runs (protocol %s, control plane debounce %s ms): median %.1f ms, p90 %.1f ms, min %.1f ms, "
      "max %.1f ms\n",
      runs, protocol.c_str(), debounce.empty() ? "100 (default)" : debounce.c_str(), Percentile(results, 0.5),
      Percentile(results, 0.9), *std::min_element(results.begin(), results.end()),
      *std::max_element(results.begin(), results.end()));
  std::printf("agent receipt->swap (Lua compile, chain set build, swap): median %.2f ms\n", Percentile(swap_ms, 0.5));
  agent.reset();
  cp.Stop();
  std::filesystem::remove_all(dir);
  return 0;
}
