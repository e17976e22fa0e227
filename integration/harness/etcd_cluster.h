// Debian's etcd-server as real processes for tests: a cluster of N members on free
// loopback ports, each of which can be killed and started again on the same ports and
// data directory.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "integration/harness/process.h"

namespace meshplug::integration::harness {

class EtcdCluster {
 public:
  // Why etcd cannot run here ("" when it can): the binary is missing.
  static std::string Unavailable();

  // Starts `members` members in `dir` and waits until they serve; error() says why not.
  EtcdCluster(const std::string& dir, int members);

  const std::string& error() const { return error_; }
  // "etcd://127.0.0.1:P1,127.0.0.1:P2,..." for --store.
  std::string url() const;
  std::string endpoint(int member) const;
  int size() const { return static_cast<int>(members_.size()); }

  void Kill(int member);  // SIGKILL, and waits for the exit
  // Starts a killed member again; "" or what went wrong.
  std::string Restart(int member);
  // Whether the member answers etcdctl's health check (it has a leader and quorum).
  bool Healthy(int member) const;
  // The member that leads now; -1 when none says it does.
  int Leader() const;

 private:
  struct Member {
    std::string name;
    int client_port = 0;
    int peer_port = 0;
    std::unique_ptr<Process> process;
    int starts = 0;
  };
  std::string StartMember(int member, bool wait_healthy);

  std::string dir_;
  std::string initial_cluster_;
  std::vector<Member> members_;
  std::string error_;
};

}  // namespace meshplug::integration::harness
