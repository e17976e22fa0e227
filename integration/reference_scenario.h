// The reference scenario of docs/spec.md §11 as real processes: the control plane, an
// external auth service, a real httpbin (gunicorn) behind its agent, and the curl
// workload's agent. Shared by the scenario test and the demo.
//
// Two layouts: everything on 127.0.0.1, curl told to use its agent as a proxy (`-x`); or
// intercepted — each workload in its own network namespace (harness::WorkloadNetwork) with
// meshplug-intercept's rules, the control plane and ext-auth in the node namespace, and
// curl run exactly as the article writes it, with no proxy flag.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "integration/harness/agent_process.h"
#include "integration/harness/control_plane_process.h"
#include "integration/harness/netns.h"
#include "integration/harness/process.h"

namespace meshplug::integration {

struct ScenarioAgent {
  std::string name, ns, app;
  std::string bootstrap;  // from its join token
  harness::AgentProcess running;
};

class ReferenceScenario {
 public:
  // `dir` holds logs, the store, the agents' saved snapshots and generated manifests.
  // `say` receives a line for each thing a person would want to see (the demo prints it).
  // `store` (etcd://...): the mesh in etcd, with a second control-plane replica beside the
  // first; agents know both, meshctl uses the first that runs.
  ReferenceScenario(std::string dir, std::function<void(const std::string&)> say = nullptr, bool intercepted = false,
                    std::string store = "");
  ~ReferenceScenario();

  // Starts every process and applies the namespaces, services and workloads; returns an
  // error message, empty on success.
  std::string Start();

  // curl to httpbin.httpbin:14001 from the curl workload (through its agent as a proxy, or
  // intercepted); the HTTP status, 0 on failure.
  int Curl(const std::string& path, std::string* body = nullptr);
  // `argv` as the curl workload's app runs it (intercepted: in its namespace, as uid 1000).
  harness::RunResult AsCurlApp(std::vector<std::string> argv);
  // `argv` where workload `name`'s processes run (its namespace when intercepted; "node"
  // is where the control plane runs).
  std::vector<std::string> In(const std::string& name, std::vector<std::string> argv) const;
  // The article's curl of `path` as a person would type it here (the demo prints it).
  std::string CurlCommandLine(const std::string& path);
  // In(name, argv) as a shell command line.
  std::string CommandLine(const std::string& name, const std::vector<std::string>& argv) const;
  harness::RunResult Meshctl(std::vector<std::string> args, std::string_view input = "");
  harness::RunResult Apply(const std::string& file);
  // The chain as the agent runs it (from the agent's own /config_dump).
  std::vector<std::string> AgentChain(const std::string& agent, const std::string& chain);
  // An admin page of the agent, with its admin token.
  std::string AgentAdmin(const std::string& agent, const std::string& path);

  void KillControlPlane();
  std::string StartControlPlane();
  std::string RestartAgent(const std::string& agent);
  void StopAuth();
  std::string StartAuth();

  const std::string& dir() const { return dir_; }
  const std::string& control_plane_address() const { return cp_.address(); }
  // Its HTTP pages (/metrics, /http_sd for Prometheus).
  const std::string& control_plane_http_address() const { return cp_.http_address(); }
  // The second control-plane replica's (with an etcd store).
  std::string second_replica_address() const { return replica_ ? replica_->address() : ""; }
  // meshctl's credentials for this control plane.
  std::string meshctl_config() const { return cp_.config_path(); }
  int outbound_port(const std::string& agent) { return Agent(agent).running.outbound; }
  int inbound_port(const std::string& agent) { return Agent(agent).running.inbound; }

 private:
  std::string StartAgent(ScenarioAgent& a);
  ScenarioAgent& Agent(const std::string& name);
  std::string AdminTokenFile(const ScenarioAgent& a) const;
  // Where the control plane and ext-auth listen.
  std::string NodeHost() const;
  // `argv` as the curl app runs it (intercepted: as its own user), and curl's arguments
  // to reach httpbin's `path` after `argv` (through its agent as a proxy, or intercepted).
  std::vector<std::string> AsApp(std::vector<std::string> argv) const;
  std::vector<std::string> CurlTo(const std::string& path, std::vector<std::string> argv);
  void Say(const std::string& line) const;

  std::string dir_;
  std::function<void(const std::string&)> say_;
  std::unique_ptr<harness::WorkloadNetwork> net_;  // intercepted
  std::string store_;                              // etcd://... (else SQLite in dir_)
  harness::ControlPlaneProcess cp_;
  std::unique_ptr<harness::ControlPlaneProcess> replica_;  // with an etcd store
  std::unique_ptr<harness::Process> auth_, httpbin_;
  int auth_port_ = 0, httpbin_port_ = 0;
  std::vector<ScenarioAgent> agents_;
};

using harness::PortAfter;

}  // namespace meshplug::integration
