// The control plane as a real process for tests and benchmarks: its store and meshctl's
// credentials file in the test's directory, a restart on the same port (agents know it by
// its address), meshctl with those credentials, and join bootstraps for agents.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "integration/harness/process.h"

namespace meshplug::integration::harness {

// `agent`'s line of `meshctl proxy status` output ("" when it is not listed), and the
// same split into its columns: AGENT CONNECTED PROTOCOL IDENTITY CERT-EXPIRES SNAPSHOT
// SYNCED CONTROL-PLANE LAST-NACK...
std::string ProxyStatusLine(const std::string& proxy_status, const std::string& agent);
std::vector<std::string> ProxyStatusRow(const std::string& proxy_status, const std::string& agent);

class ControlPlaneProcess {
 public:
  // `extra` flags go to every start.
  explicit ControlPlaneProcess(std::string dir, std::vector<std::string> extra = {});

  // Runs it, and meshctl, with `wrapper` first (e.g. `ip netns exec NS`), listening on
  // `host`; before Start.
  void Place(std::vector<std::string> wrapper, std::string host) {
    wrapper_ = std::move(wrapper);
    host_ = std::move(host);
  }

  // Uses `spec` (etcd://...) as its store instead of an SQLite file in its directory;
  // before Start.
  void UseStore(std::string spec) { store_ = std::move(spec); }
  // Joined agents are told these control-plane addresses (every replica's, "a,b,c")
  // instead of this one's.
  void SetAgentAddresses(std::string addresses) { agent_addresses_ = std::move(addresses); }

  // Starts it and waits until it listens; "" or what went wrong.
  std::string Start();
  void Kill();  // SIGKILL, and waits for the exit
  void Stop() { process_.reset(); }

  // meshctl with this control plane's address and admin credentials.
  RunResult Meshctl(std::vector<std::string> args, std::string_view input = "") const;
  // A bootstrap file for the agent of NAMESPACE/NAME (`meshctl workload token --bootstrap`,
  // the documented way an agent joins); its path, or "" with the reason in *error.
  std::string JoinBootstrap(const std::string& ns, const std::string& name, const std::string& service_account,
                            std::string* error) const;

  Process& process() { return *process_; }
  bool running() const { return process_ != nullptr; }
  const std::string& address() const { return address_; }
  // Its HTTP pages (/metrics, /http_sd), plain HTTP.
  const std::string& http_address() const { return http_address_; }
  const std::string& dir() const { return dir_; }
  // meshctl's credentials file (server, CA, admin token).
  std::string config_path() const { return dir_ + "/config"; }
  std::string log_path() const;

 private:
  std::string dir_;
  std::vector<std::string> extra_;
  std::vector<std::string> wrapper_;
  std::string host_ = "127.0.0.1";
  std::string store_;
  std::string agent_addresses_;
  std::unique_ptr<Process> process_;
  std::string address_;
  std::string http_address_;
  int starts_ = 0;
};

}  // namespace meshplug::integration::harness
