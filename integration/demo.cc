// The reference scenario (docs/spec.md §11) for a person: starts everything on 127.0.0.1, runs
// steps 1–4 printing each command and its result, then leaves the mesh running until
// Ctrl-C and cleans up.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "integration/reference_scenario.h"

namespace {

using meshplug::Eventually;
using meshplug::integration::ReferenceScenario;
using std::chrono::milliseconds;

void Banner(const std::string& text) { std::cout << "\n== " << text << "\n" << std::flush; }

// Prints the curl command and its status the way the article shows them.
int ShowCurl(ReferenceScenario& s, const std::string& path, int outbound) {
  const int code = s.Curl(path);
  std::cout << "$ curl -s -o /dev/null -w '%{http_code}\\n' -x http://127.0.0.1:" << outbound
            << " http://httpbin.httpbin:14001" << path << "\n" << code << "\n" << std::flush;
  return code;
}

// Waits until `path` answers `code` (the agents converge within a second or so).
bool Await(ReferenceScenario& s, const std::string& path, int code) {
  return Eventually([&] { return s.Curl(path) == code; }, milliseconds(15000));
}

}  // namespace

int main() {
  const char* base = std::getenv("MESHPLUG_DEMO_DIR");
  std::string dir = base ? base : "";
  if (dir.empty()) {
    char tmpl[] = "/tmp/meshplug-demo-XXXXXX";
    dir = mkdtemp(tmpl);
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  ReferenceScenario s(dir, [](const std::string& line) {
    std::cout << line << (line.empty() || line.back() == '\n' ? "" : "\n") << std::flush;
  });
  Banner("Starting the control plane, ext-auth, httpbin and the agents (logs in " + dir + ")");
  if (const std::string err = s.Start(); !err.empty()) {
    std::cerr << "demo: " << err << "\n";
    return 1;
  }
  const int outbound = s.outbound_port("curl-1");

  Banner("Step 1: curl → httpbin through the mesh");
  const int step1 = ShowCurl(s, "/get", outbound);

  Banner("Step 2: enable plugins, apply token-injector and token-verifier, mount them");
  for (const char* f : {"integration/scenario/02-enable-plugins.yaml", "plugins/examples/token-injector.yaml",
                        "plugins/examples/token-verifier.yaml", "integration/scenario/03-plugin-chains.yaml"}) {
    if (s.Apply(f).exit_code != 0) return 1;
  }
  Eventually([&] { return s.AgentChain("curl-1", "outbound-http").size() == 8; }, milliseconds(15000));
  Eventually([&] { return s.AgentChain("httpbin-1", "inbound-http").size() == 10; }, milliseconds(15000));
  for (const auto& [agent, chain] : {std::pair{"curl/curl-1", "outbound-http"}, std::pair{"httpbin/httpbin-1", "inbound-http"}}) {
    std::cout << "$ meshctl proxy config_dump " << agent << " | jq '.chains.\"" << chain << "\"'\n";
    for (const auto& m : s.AgentChain(std::string(agent).substr(std::string(agent).find('/') + 1), chain)) {
      std::cout << "  " << m << "\n";
    }
  }
  const int step2 = ShowCurl(s, "/get", outbound);

  Banner("Step 3: configure token-verifier: /get needs a token");
  s.Apply("integration/scenario/04-token-verifier-config.yaml");
  Await(s, "/get", 401);
  const int step3_get = ShowCurl(s, "/get", outbound);
  const int step3_headers = ShowCurl(s, "/headers", outbound);

  Banner("Step 4: configure token-injector: curl's requests carry the token");
  s.Apply("integration/scenario/05-token-injector-config.yaml");
  Await(s, "/get", 200);
  const int step4 = ShowCurl(s, "/get", outbound);

  Banner("Results");
  std::printf("step 1: %d, step 2: %d, step 3: %d (/get) and %d (/headers), step 4: %d\n", step1, step2, step3_get,
              step3_headers, step4);
  const bool ok = step1 == 200 && step2 == 200 && step3_get == 401 && step3_headers == 200 && step4 == 200;
  std::printf("%s\n", ok ? "as in the article: 200, 200, 401/200, 200" : "NOT as expected; see the logs");

  Banner("The mesh keeps running. Try it (Ctrl-C stops everything):");
  std::cout << "  curl -i -x http://127.0.0.1:" << outbound << " http://httpbin.httpbin:14001/headers\n"
            << "  tools/meshctl --config " << s.meshctl_config() << " proxy status\n"
            << "  tools/meshctl --config " << s.meshctl_config() << " get pluginconfigs -A\n"
            << std::flush;
  int sig = 0;
  sigwait(&set, &sig);
  std::cout << "\nstopping…\n" << std::flush;
  return ok ? 0 : 1;
}
