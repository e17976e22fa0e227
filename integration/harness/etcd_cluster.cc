#include "integration/harness/etcd_cluster.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <vector>

#include "common/strings.h"

namespace meshplug::integration::harness {
namespace {

constexpr const char* kEtcd = "/usr/bin/etcd";
constexpr const char* kEtcdctl = "/usr/bin/etcdctl";

}  // namespace

std::string EtcdCluster::Unavailable() {
  if (::access(kEtcd, X_OK) != 0 || ::access(kEtcdctl, X_OK) != 0) {
    return "needs Debian's etcd-server and etcd-client (tools/install-deps.sh installs them)";
  }
  return "";
}

EtcdCluster::EtcdCluster(const std::string& dir, int members) : dir_(dir) {
  // A port taken by someone else between choosing and binding it fails a member's start:
  // start again on other ports (a few times).
  for (int attempt = 1; attempt <= 3; ++attempt) {
    error_.clear();
    members_.clear();  // stops what an earlier attempt started, before its data goes
    std::filesystem::remove_all(dir_);
    members_.resize(members);
    const std::vector<int> ports = FreeLoopbackPorts(2 * members);
    std::vector<std::string> peers;
    for (int i = 0; i < members; ++i) {
      Member& m = members_[i];
      m.name = Cat("etcd", i);
      m.client_port = ports[2 * i];
      m.peer_port = ports[2 * i + 1];
      peers.push_back(Cat(m.name, "=http://127.0.0.1:", m.peer_port));
    }
    initial_cluster_ = Join(peers, ",");
    // Members wait for each other to elect a leader: start all, then wait.
    for (int i = 0; i < members && error_.empty(); ++i) error_ = StartMember(i, false);
    for (int i = 0; i < members && error_.empty(); ++i) {
      if (!Eventually([&] { return Healthy(i) || members_[i].process->Wait(milliseconds(0)).has_value(); },
                      milliseconds(30000), milliseconds(100)) ||
          !Healthy(i)) {
        error_ = Cat(members_[i].name, " did not become healthy:\n", members_[i].process->Log());
      }
    }
    if (error_.empty() || error_.find("address already in use") == std::string::npos) return;
  }
}

std::string EtcdCluster::StartMember(int member, bool wait_healthy) {
  Member& m = members_[member];
  const std::string data = Cat(dir_, "/", m.name);
  std::filesystem::create_directories(data);
  m.process = Process::Start(
      {kEtcd, "--name", m.name, "--data-dir", data, "--listen-client-urls", Cat("http://127.0.0.1:", m.client_port),
       "--advertise-client-urls", Cat("http://127.0.0.1:", m.client_port), "--listen-peer-urls",
       Cat("http://127.0.0.1:", m.peer_port), "--initial-advertise-peer-urls", Cat("http://127.0.0.1:", m.peer_port),
       "--initial-cluster", initial_cluster_, "--initial-cluster-state", m.starts == 0 ? "new" : "existing",
       "--initial-cluster-token", "meshplug-test",
       // Elections in about a second, so a lost member is replaced quickly.
       "--heartbeat-interval", "100", "--election-timeout", "1000", "--logger", "zap", "--log-outputs", "stderr"},
      Cat(dir_, "/", m.name, ".log"));
  ++m.starts;
  if (!m.process) return Cat("cannot start ", kEtcd);
  if (wait_healthy && !Eventually([&] { return Healthy(member); }, milliseconds(30000), milliseconds(100))) {
    return Cat(m.name, " did not become healthy again:\n", m.process->Log());
  }
  return "";
}

std::string EtcdCluster::url() const {
  std::vector<std::string> endpoints;
  for (int i = 0; i < size(); ++i) endpoints.push_back(endpoint(i));
  return "etcd://" + Join(endpoints, ",");
}

std::string EtcdCluster::endpoint(int member) const { return Cat("127.0.0.1:", members_[member].client_port); }

void EtcdCluster::Kill(int member) {
  Process& p = *members_[member].process;
  p.Signal(SIGKILL);
  p.Wait(milliseconds(10000));
}

std::string EtcdCluster::Restart(int member) { return StartMember(member, true); }

bool EtcdCluster::Healthy(int member) const {
  const RunResult r = Run({kEtcdctl, "--endpoints", endpoint(member), "--command-timeout=1s", "endpoint", "health"}, "",
                          milliseconds(5000), {"ETCDCTL_API=3"});
  return r.exit_code == 0;
}

}  // namespace meshplug::integration::harness

namespace meshplug::integration::harness {

int EtcdCluster::Leader() const {
  for (int i = 0; i < size(); ++i) {
    // "ENDPOINT, ID, VERSION, DB SIZE, IS LEADER, ..."
    const RunResult r = Run({kEtcdctl, "--endpoints", endpoint(i), "--command-timeout=1s", "endpoint", "status"}, "",
                            milliseconds(5000), {"ETCDCTL_API=3"});
    if (r.exit_code == 0 && r.out.find(", true, ") != std::string::npos &&
        r.out.find(", true, ") == r.out.find(", true, false, ")) {
      return i;
    }
  }
  return -1;
}

}  // namespace meshplug::integration::harness
