// Certificate renewal under load: two real agents joined to a real control plane, strict
// mTLS between them, certificates that live 20 s, and wrk driving requests through both
// agents for 30 s. Every agent must renew at least twice and no request may fail.
//
//   bazel run //bench/mtls:renewal_under_load -- [--seconds 30] [--lifetime 20s]
//       [--connections 16]
//
// client ──wrk──▶ client agent (outbound) ══mTLS══▶ web agent (inbound) ──▶ app
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "agent/testing/test_support.h"
#include "integration/harness/agent_process.h"
#include "integration/harness/control_plane_process.h"
#include "integration/harness/process.h"

namespace {

using meshplug::agent::testing::Client;
using meshplug::agent::testing::TestUpstream;
using meshplug::integration::harness::AgentProcess;
using meshplug::integration::harness::ControlPlaneProcess;
using meshplug::integration::harness::Eventually;
using meshplug::integration::harness::Run;
using meshplug::integration::harness::StartJoinedAgent;
using std::chrono::milliseconds;

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "renewal_under_load: %s\n", why.c_str());
  std::exit(1);
}

AgentProcess StartAgent(const ControlPlaneProcess& cp, const std::string& dir, const std::string& name,
                        const std::string& app) {
  std::string error;
  auto agent = StartJoinedAgent(cp, dir, "demo", name, app, &error);
  if (!agent) Die(error);
  return *std::move(agent);
}

}  // namespace

int main(int argc, char** argv) {
  int seconds = 30, connections = 16;
  std::string lifetime = "20s";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--seconds") {
      seconds = std::atoi(argv[i + 1]);
    } else if (flag == "--lifetime") {
      lifetime = argv[i + 1];
    } else if (flag == "--connections") {
      connections = std::atoi(argv[i + 1]);
    } else {
      Die("unknown flag " + flag);
    }
  }
  if (seconds < 1 || seconds > 600 || connections < 1 || connections > 1000) Die("--seconds 1-600, --connections 1-1000");
  char tmpl[] = "/tmp/mtls-renewal.XXXXXX";
  if (!mkdtemp(tmpl)) Die("cannot create a temporary directory");
  const std::string dir = tmpl;

  TestUpstream app("app");
  ControlPlaneProcess cp(dir);
  if (auto err = cp.Start(); !err.empty()) Die(err);
  const std::string mesh = "apiVersion: config.openservicemesh.io/v1alpha2\nkind: MeshConfig\n"
                           "metadata: {name: osm-mesh-config}\n"
                           "spec:\n  traffic: {mtlsMode: strict}\n  certificate: {serviceCertValidityDuration: " +
                           lifetime +
                           "}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n---\n"
                           "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: demo}\n"
                           "spec: {ports: [{port: 8080, targetPort: " +
                           std::to_string(app.port()) + ", protocol: http}], selector: {app: web}}\n";
  if (auto r = cp.Meshctl({"apply", "-f", "-"}, mesh); r.exit_code != 0) Die("meshctl apply: " + r.err);
  AgentProcess web = StartAgent(cp, dir, "web-1", "web");
  AgentProcess client = StartAgent(cp, dir, "client-1", "client");
  if (!Eventually(
          [&] {
            auto r = Client(client.outbound, milliseconds(2000)).Get("web.demo:8080", "/");
            return r && r->result_int() == 200;
          },
          milliseconds(30000))) {
    Die("client → web through both agents never worked; see " + dir);
  }
  const long renewals_before = web.Metric("meshplug_agent_certificate_requests_total", "renewal") +
                               client.Metric("meshplug_agent_certificate_requests_total", "renewal");

  auto wrk = Run({"/usr/bin/wrk", "-t1", "-c" + std::to_string(connections), "-d" + std::to_string(seconds) + "s",
                  "-H", "Host: web.demo:8080", "http://127.0.0.1:" + std::to_string(client.outbound) + "/"},
                 "", milliseconds((seconds + 30) * 1000));
  if (wrk.exit_code != 0) Die("wrk failed: " + wrk.err + wrk.out);
  std::smatch m;
  const long requests = std::regex_search(wrk.out, m, std::regex(R"((\d+) requests in)")) ? std::stol(m[1]) : -1;
  const long non2xx = std::regex_search(wrk.out, m, std::regex(R"(Non-2xx or 3xx responses: (\d+))")) ? std::stol(m[1]) : 0;
  const bool socket_errors = wrk.out.find("Socket errors") != std::string::npos;
  const double rps = std::regex_search(wrk.out, m, std::regex(R"(Requests/sec:\s+([\d.]+))")) ? std::stod(m[1]) : 0;

  const long web_renewals = web.Metric("meshplug_agent_certificate_requests_total", "kind=\"renewal\",result=\"ok\"");
  const long client_renewals =
      client.Metric("meshplug_agent_certificate_requests_total", "kind=\"renewal\",result=\"ok\"");
  const long renew_failures = web.Metric("meshplug_agent_certificate_requests_total", "result=\"failed\"") +
                              client.Metric("meshplug_agent_certificate_requests_total", "result=\"failed\"");
  const long handshakes = web.Metric("meshplug_agent_tls_handshakes_total", "result=\"ok\"");
  const long refused = web.Metric("meshplug_agent_tls_handshakes_total") - handshakes;
  std::printf("%d s of wrk (%d connections) through two agents, strict mTLS, certificates living %s\n", seconds,
              connections, lifetime.c_str());
  std::printf("requests: %ld (%.0f/s), non-2xx: %ld, socket errors: %s\n", requests, rps, non2xx,
              socket_errors ? "yes" : "none");
  std::printf("renewals during the run: web agent %ld, client agent %ld (before: %ld in all), failed renewals: %ld\n",
              web_renewals, client_renewals, renewals_before, renew_failures);
  std::printf("inbound mTLS handshakes at the web agent: %ld ok, %ld refused\n", handshakes, refused);
  const bool ok = requests > 0 && non2xx == 0 && !socket_errors && web_renewals >= 2 && client_renewals >= 2 &&
                  renew_failures == 0 && refused == 0;
  std::printf("%s\n", ok ? "PASS: every agent renewed at least twice and no request failed" : "FAIL");
  if (ok) std::filesystem::remove_all(dir);
  return ok ? 0 : 1;
}
