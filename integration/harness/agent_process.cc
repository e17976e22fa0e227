#include "integration/harness/agent_process.h"

#include <atomic>
#include <cstdlib>
#include <sstream>

namespace meshplug::integration::harness {

long AgentProcess::Metric(const std::string& name, const std::string& filter) const {
  auto r = Run({"/usr/bin/curl", "-s", "--max-time", "5", "http://127.0.0.1:" + std::to_string(admin) + "/stats"});
  long total = 0;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name, 0) == 0 && line.find(filter) != std::string::npos) {
      total += std::atol(line.substr(line.rfind(' ') + 1).c_str());
    }
  }
  return total;
}

std::optional<AgentProcess> StartJoinedAgent(const ControlPlaneProcess& cp, const std::string& dir,
                                             const std::string& ns, const std::string& name, const std::string& app,
                                             std::string* error) {
  const std::string bootstrap = cp.JoinBootstrap(ns, name, app, error);
  if (bootstrap.empty()) return std::nullopt;
  return StartAgentWithBootstrap(bootstrap, dir, name, "app=" + app, error);
}

std::optional<AgentProcess> StartAgentWithBootstrap(const std::string& bootstrap, const std::string& dir,
                                                    const std::string& name, const std::string& labels,
                                                    std::string* error, const AgentRun& run) {
  // A log of its own per start: a log of an earlier start would show "listening" already.
  static std::atomic<int> starts{0};
  const std::string log = dir + "/" + name + "." + std::to_string(++starts) + ".log";
  std::vector<std::string> argv = run.wrapper;
  argv.insert(argv.end(), {"agent/agent", "--bootstrap=" + bootstrap, "--labels=" + labels, "--address=127.0.0.1",
                           "--bind_address=127.0.0.1", "--outbound_port=0", "--inbound_port=0", "--admin_port=0",
                           "--workers=1", "--identity_file=" + dir + "/" + name + ".identity.pem",
                           "--snapshot_cache=none", "--admin_token_file=" + dir + "/" + name + ".admin-token"});
  argv.insert(argv.end(), run.flags.begin(), run.flags.end());
  AgentProcess a;
  a.process = Process::Start(argv, log);
  auto line = a.process ? a.process->WaitForLog("agent: listening", std::chrono::milliseconds(20000)) : std::nullopt;
  if (!line) {
    *error = "agent " + name + " did not start; see " + log;
    return std::nullopt;
  }
  a.outbound = static_cast<uint16_t>(PortAfter(*line, "outbound="));
  a.inbound = static_cast<uint16_t>(PortAfter(*line, "inbound="));
  a.admin = static_cast<uint16_t>(PortAfter(*line, "admin="));
  return a;
}

}  // namespace meshplug::integration::harness
