#include "integration/harness/netns.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "integration/harness/process.h"

namespace meshplug::integration::harness {
std::string RunAll(const std::vector<std::vector<std::string>>& commands) {
  for (const auto& argv : commands) {
    const RunResult r = Run(argv);
    if (r.exit_code != 0) {
      std::string line;
      for (const auto& a : argv) line += a + " ";
      return line + "failed: " + r.err;
    }
  }
  return "";
}

std::vector<std::string> InNamespace(const std::string& ns, std::vector<std::string> argv) {
  argv.insert(argv.begin(), {"ip", "netns", "exec", ns});
  return argv;
}

std::vector<std::string> AsAppUser(std::vector<std::string> argv) {
  argv.insert(argv.begin(), {"setpriv", "--reuid=1000", "--regid=1000", "--clear-groups"});
  return argv;
}

std::vector<std::string> InterceptCommand(const std::string& verb, const std::string& exclude_cidr) {
  return {"agent/intercept/meshplug-intercept", verb, "--proxy_uid=0", "--outbound_port=15001",
          "--inbound_port=15003", "--dns_port=15053", "--exclude_outbound_cidrs=" + exclude_cidr};
}

std::string NetnsUnavailable() {
  if (geteuid() != 0) return "needs root to create network namespaces and iptables rules";
  if (Run({"sh", "-c", "command -v iptables-restore && command -v ip"}).exit_code != 0) {
    return "iptables or iproute2 is not installed (tools/install-deps.sh)";
  }
  const std::string probe = "mp-probe-" + std::to_string(getpid());
  const RunResult added = Run({"ip", "netns", "add", probe});
  Run({"ip", "netns", "del", probe});
  if (added.exit_code != 0) return "cannot create a network namespace here: " + added.err;
  return "";
}

void DeleteNamespace(const std::string& name) {
  std::istringstream pids(Run({"ip", "netns", "pids", name}).out);
  for (pid_t pid; pids >> pid;) ::kill(pid, SIGKILL);
  Run({"ip", "netns", "del", name});
  std::error_code ec;
  std::filesystem::remove_all("/etc/netns/" + name, ec);
}

namespace {

// Whether process `pid` runs: a zombie (killed, not yet reaped by a parent that does not
// wait, as a container's init may not) does not.
bool Running(const std::string& pid) {
  std::ifstream stat("/proc/" + pid + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const size_t name_end = line.rfind(')');
  return name_end != std::string::npos && name_end + 2 < line.size() && line[name_end + 2] != 'Z';
}

}  // namespace

void RemoveStaleNamespaces(const std::string& prefix) {
  std::istringstream list(Run({"ip", "netns", "list"}).out);
  for (std::string line; std::getline(list, line);) {
    const std::string name = line.substr(0, line.find(' '));
    if (name.rfind(prefix, 0) != 0) continue;
    std::string pid = name.substr(prefix.size());
    pid = pid.substr(0, pid.find('-'));
    const bool numeric = !pid.empty() && pid.find_first_not_of("0123456789") == std::string::npos;
    if (numeric && pid != std::to_string(getpid()) && !Running(pid)) DeleteNamespace(name);
  }
}

WorkloadNetwork::WorkloadNetwork(std::string prefix) : prefix_(std::move(prefix) + std::to_string(getpid()) + "-") {}

WorkloadNetwork::~WorkloadNetwork() {
  for (const auto& w : workloads_) DeleteNamespace(Namespace(w));
  if (started_) DeleteNamespace(Namespace("node"));
}

std::string WorkloadNetwork::Namespace(const std::string& name) const { return prefix_ + name; }

std::vector<std::string> WorkloadNetwork::In(const std::string& name, std::vector<std::string> argv) const {
  return InNamespace(Namespace(name), std::move(argv));
}

std::string WorkloadNetwork::Address(const std::string& name) const {
  const auto it = std::find(workloads_.begin(), workloads_.end(), name);
  return "10.201.0." + std::to_string(11 + (it - workloads_.begin()));
}

std::string WorkloadNetwork::Start() {
  DeleteNamespace(Namespace("node"));
  if (auto err = RunAll({{"ip", "netns", "add", Namespace("node")}}); !err.empty()) return err;
  started_ = true;
  return RunAll({In("node", {"ip", "link", "set", "lo", "up"}),
                 In("node", {"ip", "link", "add", "br0", "type", "bridge"}),
                 In("node", {"ip", "addr", "add", std::string(kNodeAddress) + "/24", "dev", "br0"}),
                 In("node", {"ip", "link", "set", "br0", "up"})});
}

std::string WorkloadNetwork::AddWorkload(const std::string& name) {
  const std::string ns = Namespace(name);
  DeleteNamespace(ns);
  if (auto err = RunAll({{"ip", "netns", "add", ns}}); !err.empty()) return err;
  workloads_.push_back(name);
  const std::string peer = "v" + std::to_string(workloads_.size());
  std::filesystem::create_directories("/etc/netns/" + ns);
  std::ofstream("/etc/netns/" + ns + "/resolv.conf") << "nameserver " << kNodeAddress << "\n";
  return RunAll({In(name, {"ip", "link", "set", "lo", "up"}),
                 In(name, {"ip", "link", "add", "eth0", "type", "veth", "peer", "name", peer}),
                 In(name, {"ip", "link", "set", peer, "netns", Namespace("node")}),
                 In(name, {"ip", "addr", "add", Address(name) + "/24", "dev", "eth0"}),
                 In(name, {"ip", "link", "set", "eth0", "up"}),
                 In(name, {"ip", "route", "add", "default", "via", kNodeAddress}),
                 In("node", {"ip", "link", "set", peer, "master", "br0"}),
                 In("node", {"ip", "link", "set", peer, "up"})});
}

}  // namespace meshplug::integration::harness
