// The reference scenario of docs/spec.md §11 as real processes on 127.0.0.1: the control plane,
// an external auth service, a real httpbin (gunicorn) behind its agent, and the curl
// workload's agent that curl sends through. Shared by the scenario test and the demo.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "integration/harness/control_plane_process.h"
#include "integration/harness/process.h"

namespace meshplug::integration {

struct AgentProcess {
  std::string name, ns, app;
  std::unique_ptr<harness::Process> process;
  int outbound = 0, inbound = 0, admin = 0;
  int starts = 0;
  std::string bootstrap;  // from its join token
};

class ReferenceScenario {
 public:
  // `dir` holds logs, the store, the agents' saved snapshots and generated manifests.
  // `say` receives a line for each thing a person would want to see (the demo prints it).
  explicit ReferenceScenario(std::string dir, std::function<void(const std::string&)> say = nullptr);
  ~ReferenceScenario();

  // Starts every process and applies the namespaces, services and workloads; returns an
  // error message, empty on success.
  std::string Start();

  // curl through the curl workload's agent (explicit proxy); the HTTP status, 0 on failure.
  int Curl(const std::string& path, std::string* body = nullptr);
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
  // meshctl's credentials for this control plane.
  std::string meshctl_config() const { return cp_.config_path(); }
  int outbound_port(const std::string& agent) { return Agent(agent).outbound; }
  int inbound_port(const std::string& agent) { return Agent(agent).inbound; }

 private:
  std::string StartAgent(AgentProcess& a);
  AgentProcess& Agent(const std::string& name);
  std::string AdminTokenFile(const AgentProcess& a) const;
  void Say(const std::string& line) const;

  std::string dir_;
  std::function<void(const std::string&)> say_;
  harness::ControlPlaneProcess cp_;
  std::unique_ptr<harness::Process> auth_, httpbin_;
  int auth_port_ = 0, httpbin_port_ = 0;
  std::vector<AgentProcess> agents_;
};

using harness::PortAfter;

}  // namespace meshplug::integration
