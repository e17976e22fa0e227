// Workloads on one machine as pods on a node: a "node" network namespace holding a bridge
// (10.201.0.1/24, where the control plane and services without an agent listen) and one
// namespace per workload, linked to the bridge by a veth pair, with its own address and a
// resolver configuration pointing at the node (`ip netns exec` mounts
// /etc/netns/<namespace>/resolv.conf; interception hands those queries to the agent).
// Addresses and links exist only inside these namespaces. Everything is removed when the
// object goes away, processes inside killed first; namespaces that a killed test left
// behind are removed by the next one.
#pragma once

#include <string>
#include <vector>

namespace meshplug::integration::harness {

// "" when network namespaces and iptables can be used here (root); else why not.
std::string NetnsUnavailable();

// Removes namespaces named "<prefix><pid>..." whose pid is not a running process (gone, or
// a zombie), killing what still runs in them.
void RemoveStaleNamespaces(const std::string& prefix);

// Deletes namespace `name` (killing its processes) and its /etc/netns directory.
void DeleteNamespace(const std::string& name);

// `argv` run in network namespace `ns`.
std::vector<std::string> InNamespace(const std::string& ns, std::vector<std::string> argv);
// `argv` run as uid and gid 1000: not the agents' uid (0), so interception applies to it.
std::vector<std::string> AsAppUser(std::vector<std::string> argv);
// meshplug-intercept `verb` (install or remove) for an agent running as uid 0 on ports
// 15001 (outbound), 15003 (inbound) and 15053 (DNS), leaving `exclude_cidr` alone.
std::vector<std::string> InterceptCommand(const std::string& verb, const std::string& exclude_cidr);
// Runs each command in turn; "" or the first failure (its command and stderr).
std::string RunAll(const std::vector<std::vector<std::string>>& commands);

class WorkloadNetwork {
 public:
  static constexpr const char* kNodeAddress = "10.201.0.1";

  // Namespaces "<prefix><pid>-node", "<prefix><pid>-<workload>".
  explicit WorkloadNetwork(std::string prefix);
  ~WorkloadNetwork();
  WorkloadNetwork(const WorkloadNetwork&) = delete;
  WorkloadNetwork& operator=(const WorkloadNetwork&) = delete;

  // The node namespace and its bridge; "" or what failed.
  std::string Start();
  // A workload namespace "name" linked to the bridge; "" or what failed.
  std::string AddWorkload(const std::string& name);
  // `argv` run in the namespace of `name` ("node" or a workload).
  std::vector<std::string> In(const std::string& name, std::vector<std::string> argv) const;
  // A workload's address.
  std::string Address(const std::string& name) const;

 private:
  std::string Namespace(const std::string& name) const;

  std::string prefix_;
  std::vector<std::string> workloads_;
  bool started_ = false;
};

}  // namespace meshplug::integration::harness
