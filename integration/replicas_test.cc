// Highly available control plane (issue 18): three control-plane replicas on a
// three-member etcd cluster (Debian's etcd-server), agents that know every replica, and
// traffic through them while replicas and etcd members are killed.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "agent/testing/test_support.h"
#include "common/strings.h"
#include "integration/harness/agent_process.h"
#include "integration/harness/control_plane_process.h"
#include "integration/harness/etcd_cluster.h"
#include "integration/harness/process.h"

namespace meshplug::integration {
namespace {

using agent::testing::Client;
using agent::testing::TestUpstream;
using harness::AgentProcess;
using harness::ControlPlaneProcess;
using harness::EtcdCluster;
using harness::Eventually;
using harness::Process;
using std::chrono::milliseconds;

constexpr int kReplicas = 3;

std::string Namespace(const std::string& name) { return "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + name + "}\n"; }

class ReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = EtcdCluster::Unavailable(); !why.empty()) GTEST_SKIP() << why;
    dir_ = harness::TempDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    etcd_ = std::make_unique<EtcdCluster>(dir_ + "/etcd", 3);
    ASSERT_EQ(etcd_->error(), "");
    std::vector<std::string> addresses;
    for (int i = 0; i < kReplicas; ++i) {
      std::filesystem::create_directories(Cat(dir_, "/cp", i));
      replicas_.push_back(std::make_unique<ControlPlaneProcess>(Cat(dir_, "/cp", i)));
      replicas_[i]->UseStore(etcd_->url());
      ASSERT_EQ(replicas_[i]->Start(), "");
      addresses.push_back(replicas_[i]->address());
    }
    for (auto& r : replicas_) r->SetAgentAddresses(Join(addresses, ","));
  }

  // The demo mesh through replica `via`, and two agents (client → web) that may use any
  // replica, with a request through both.
  void StartMesh(int via) {
    const std::string manifest =
        "apiVersion: config.openservicemesh.io/v1alpha2\nkind: MeshConfig\nmetadata: {name: osm-mesh-config}\n"
        "spec:\n  traffic: {mtlsMode: strict}\n---\n" +
        Namespace("demo") + "---\n" + Service("web", 8080);
    auto r = replicas_[via]->Meshctl({"apply", "-f", "-"}, manifest);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::string error;
    auto server = harness::StartJoinedAgent(*replicas_[via], dir_, "demo", "web", "web", &error);
    ASSERT_TRUE(server) << error;
    server_ = std::move(*server);
    auto client = harness::StartJoinedAgent(*replicas_[via], dir_, "demo", "client", "client", &error);
    ASSERT_TRUE(client) << error;
    client_ = std::move(*client);
    ASSERT_TRUE(Eventually([&] { return Ok("web.demo:8080"); }, milliseconds(30000)));
  }

  std::string Service(const std::string& name, int port) const {
    return "apiVersion: v1\nkind: Service\nmetadata: {name: " + name + ", namespace: demo}\n"
           "spec: {ports: [{port: " + std::to_string(port) + ", targetPort: " + std::to_string(app_.port()) +
           ", protocol: http}], selector: {app: web}}\n";
  }

  bool Ok(const std::string& host) const {
    auto got = Client(client_.outbound, milliseconds(2000)).Get(host, "/");
    return got && got->result_int() == 200;
  }

  // The replica that serves `agent`, from the CONTROL PLANE column of proxy status as
  // replica `ask` (any replica lists every agent) shows it; -1 when not connected.
  int ReplicaOf(const std::string& agent, int ask = -1) const {
    for (int i = 0; i < kReplicas && ask < 0; ++i) ask = replicas_[i]->running() ? i : -1;
    if (ask < 0) return -1;
    auto row = harness::ProxyStatusRow(replicas_[ask]->Meshctl({"proxy", "status"}).out, agent);
    if (row.size() < 8 || row[1] != "true") return -1;
    for (int i = 0; i < kReplicas; ++i) {
      if (replicas_[i]->address() == row[7]) return i;
    }
    return -1;
  }

  TestUpstream app_{"web"};
  std::string dir_;
  std::unique_ptr<EtcdCluster> etcd_;
  std::vector<std::unique_ptr<ControlPlaneProcess>> replicas_;
  AgentProcess server_, client_;
};

TEST_F(ReplicasTest, AChangeThroughOneReplicaReachesAgentsOfTheOthersAndAgentsSurviveALostReplica) {
  StartMesh(0);
  // Every replica lists both agents, with the replica that serves each.
  int lost = -1;  // the client's replica, killed below
  ASSERT_TRUE(Eventually([&] { return (lost = ReplicaOf("demo/client")) >= 0; }, milliseconds(5000)));
  for (int i = 0; i < kReplicas; ++i) {
    EXPECT_TRUE(Eventually([&] { return ReplicaOf("demo/client", i) == lost && ReplicaOf("demo/web", i) >= 0; },
                           milliseconds(5000)))
        << replicas_[i]->Meshctl({"proxy", "status"}).out;
  }
  // (5) Applied through the replica that serves neither agent, if there is one.
  int via = 0;
  while (via < kReplicas - 1 && (via == ReplicaOf("demo/client") || via == ReplicaOf("demo/web"))) ++via;
  auto r = replicas_[via]->Meshctl({"apply", "-f", "-"}, Service("web2", 8081));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Eventually([&] { return Ok("web2.demo:8081"); }, milliseconds(10000)));

  // (1) Kill the client's replica while wrk drives traffic through both agents.
  const auto before = harness::ProxyStatusRow(replicas_[lost]->Meshctl({"proxy", "status"}).out, "demo/client");
  ASSERT_GE(before.size(), 8u);
  const long swaps = client_.Metric("meshplug_agent_chain_swaps");
  const long streams = client_.Metric("meshplug_agent_xds_streams_total");
  auto wrk = Process::Start({"/usr/bin/wrk", "-t1", "-c4", "-d6s", "-H", "Host: web.demo:8080",
                             Cat("http://127.0.0.1:", client_.outbound, "/")},
                            dir_ + "/wrk.log");
  ASSERT_TRUE(Eventually([&] { return app_.requests() > 100; }, milliseconds(5000)));
  replicas_[lost]->Kill();
  const auto killed = std::chrono::steady_clock::now();
  ASSERT_TRUE(Eventually([&] { return client_.Metric("meshplug_agent_xds_streams_total") > streams; },
                         milliseconds(5000)))
      << "the client's agent did not reconnect to another replica within 5 s";
  const auto reconnected = std::chrono::steady_clock::now() - killed;
  int moved_to = -1;
  ASSERT_TRUE(Eventually(
      [&] {
        moved_to = ReplicaOf("demo/client");
        return moved_to >= 0 && moved_to != lost;
      },
      milliseconds(5000)));
  std::vector<std::string> after;
  // The same snapshot, all types ACKed: the new replica computed the same versions.
  EXPECT_TRUE(Eventually(
      [&] {
        after = harness::ProxyStatusRow(replicas_[moved_to]->Meshctl({"proxy", "status"}).out, "demo/client");
        return after.size() >= 8 && after[5] == before[5] && after[6] == before[6];
      },
      milliseconds(5000)))
      << "before: " << Join(before, " ") << "\nafter: " << Join(after, " ");
  // No replica shows an agent on the dead one any more (its live values end with their TTL).
  const std::string lost_address = replicas_[lost]->address();
  EXPECT_TRUE(Eventually(
      [&] { return replicas_[moved_to]->Meshctl({"proxy", "status"}).out.find(lost_address) == std::string::npos; },
      milliseconds(15000)));
  // meshctl given every replica uses one that answers.
  auto any = harness::Run({"cli/meshctl", "--config", replicas_[moved_to]->config_path(), "--server",
                           lost_address + "," + replicas_[moved_to]->address(), "get", "namespaces"});
  EXPECT_EQ(any.exit_code, 0) << any.err;
  EXPECT_NE(any.out.find("demo"), std::string::npos) << any.out;
  // Nothing the agent had was sent again, so nothing was rebuilt.
  EXPECT_EQ(client_.Metric("meshplug_agent_chain_swaps"), swaps);
  ASSERT_TRUE(wrk->Wait(milliseconds(20000)));
  const std::string out = wrk->Log();
  EXPECT_EQ(out.find("Socket errors"), std::string::npos) << out;
  EXPECT_EQ(out.find("Non-2xx"), std::string::npos) << out;
  EXPECT_NE(out.find("requests in"), std::string::npos) << out;
  std::cout << "reconnected to replica " << moved_to << " in "
            << std::chrono::duration_cast<milliseconds>(reconnected).count() << " ms; wrk: " << out << "\n";
}

TEST_F(ReplicasTest, AppliesContinueWithoutOneEtcdMemberAndResumeWhenQuorumReturns) {
  StartMesh(0);
  // (2) One member of three gone, the leader: every replica still applies.
  const int leader = etcd_->Leader();
  ASSERT_GE(leader, 0);
  etcd_->Kill(leader);
  for (int i = 0; i < kReplicas; ++i) {
    auto r = replicas_[i]->Meshctl({"apply", "-f", "-"}, Namespace(Cat("one-down-", i)));
    EXPECT_EQ(r.exit_code, 0) << "replica " << i << ": " << r.err;
  }
  // (3) Two gone: no quorum. Applies fail saying so; agents and traffic carry on.
  const int second = (leader + 1) % 3;
  etcd_->Kill(second);
  auto refused = replicas_[1]->Meshctl({"apply", "-f", "-"}, Namespace("no-quorum"));
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("did not answer within 5 s: are a quorum of its members up and reachable?"),
            std::string::npos)
      << refused.err;
  EXPECT_EQ(refused.err.find("cannot reach the control plane"), std::string::npos) << refused.err;
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(Ok("web.demo:8080"));
  EXPECT_EQ(client_.Metric("meshplug_agent_xds_connection_state", "state=\"connected\""), 1);
  EXPECT_EQ(server_.Metric("meshplug_agent_xds_connection_state", "state=\"connected\""), 1);

  // Quorum back: applies work again, and reach the agents, with nothing restarted.
  ASSERT_EQ(etcd_->Restart(leader), "");
  ASSERT_EQ(etcd_->Restart(second), "");
  EXPECT_TRUE(Eventually(
      [&] { return replicas_[1]->Meshctl({"apply", "-f", "-"}, Service("back", 8082)).exit_code == 0; },
      milliseconds(30000), milliseconds(500)));
  EXPECT_TRUE(Eventually([&] { return Ok("back.demo:8082"); }, milliseconds(10000)));
  auto listed = replicas_[2]->Meshctl({"get", "namespaces"});
  EXPECT_NE(listed.out.find("one-down-2"), std::string::npos) << listed.out;
  EXPECT_EQ(listed.out.find("no-quorum"), std::string::npos) << listed.out;
}

// A CA rotation stepped through one replica is followed by the others: every replica
// reports each phase, agents on every replica renew with the new CA, and requests
// between agents served by different replicas never fail.
TEST_F(ReplicasTest, ACaRotationThroughOneReplicaIsFollowedByAll) {
  StartMesh(0);
  std::atomic<bool> stop{false};
  std::atomic<long> ok{0}, failed{0};
  std::thread traffic([&] {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
    for (int i = 0; i < 100000 && !stop && std::chrono::steady_clock::now() < deadline; ++i) {
      (Ok("web.demo:8080") ? ok : failed)++;
    }
  });
  // Joined however the test ends (a failed ASSERT returns early).
  const std::unique_ptr<void, std::function<void(void*)>> joined(&traffic, [&](void*) {
    stop = true;
    if (traffic.joinable()) traffic.join();
  });
  // Every replica shows `phase` with no agent lagging behind.
  auto everywhere = [&](const std::string& phase) {
    for (int i = 0; i < kReplicas; ++i) {
      std::string out;
      if (!Eventually(
              [&] {
                out = replicas_[i]->Meshctl({"ca", "status"}).out;
                return out.find("phase: " + phase) != std::string::npos && out.find("agents") == std::string::npos;
              },
              milliseconds(20000))) {
        ADD_FAILURE() << "replica " << i << ":\n" << out;
        return false;
      }
    }
    return true;
  };
  for (const char* step : {"start", "activate", "finish"}) {
    // A step is refused while agents catch up with the last one; an operator asks again.
    harness::RunResult r;
    ASSERT_TRUE(Eventually([&] { return (r = replicas_[0]->Meshctl({"ca", "rotate", step})).exit_code == 0; },
                           milliseconds(20000), milliseconds(500)))
        << step << ": " << r.err << replicas_[0]->Meshctl({"proxy", "status"}).out
        << replicas_[1]->Meshctl({"proxy", "status"}).out;
    ASSERT_TRUE(everywhere(std::string(step) == "start" ? "started" : step == std::string("activate") ? "activated" : "steady"))
        << step;
  }
  stop = true;
  traffic.join();
  EXPECT_EQ(failed, 0) << ok << " ok";
  EXPECT_GT(ok, 0);
  // One CA everywhere, the new one.
  const std::string signer = replicas_[0]->Meshctl({"ca", "status"}).out;
  for (int i = 1; i < kReplicas; ++i) EXPECT_EQ(replicas_[i]->Meshctl({"ca", "status"}).out, signer);
  std::cout << "requests during the rotation: " << ok << " ok, " << failed << " failed\n";
}

// Two replicas create Services at the same time: every Service gets an address of its
// own (each replica claims addresses in etcd while it applies).
TEST_F(ReplicasTest, ConcurrentAppliesOnTwoReplicasNeverShareAServiceAddress) {
  ASSERT_EQ(replicas_[0]->Meshctl({"apply", "-f", "-"}, Namespace("demo")).exit_code, 0);
  std::vector<std::unique_ptr<Process>> applies;
  for (int r = 1; r <= 2; ++r) {
    std::string manifest;
    for (int i = 0; i < 20; ++i) manifest += Service(Cat("r", r, "-", i), 8080) + "---\n";
    const std::string file = Cat(dir_, "/services", r, ".yaml");
    std::ofstream(file) << manifest;
    applies.push_back(Process::Start({"cli/meshctl", "--config", replicas_[r]->config_path(), "--server",
                                      replicas_[r]->address(), "apply", "-f", file},
                                     Cat(dir_, "/services", r, ".log")));
  }
  for (auto& p : applies) {
    const auto code = p->Wait(milliseconds(30000));
    ASSERT_TRUE(code);
    // A clash found after claiming is refused, not stored: applying again settles it.
    if (*code != 0) {
      EXPECT_NE(p->Log().find("by a concurrent apply"), std::string::npos) << p->Log();
    }
  }
  for (int r = 1; r <= 2; ++r) {
    ASSERT_TRUE(Eventually(
        [&] {
          return replicas_[r]->Meshctl({"apply", "-f", Cat(dir_, "/services", r, ".yaml")}).exit_code == 0;
        },
        milliseconds(10000)));
  }
  auto listed = replicas_[0]->Meshctl({"get", "services", "-n", "demo", "-o", "yaml"});
  std::set<std::string> addresses;
  int services = 0;
  std::istringstream lines(listed.out);
  for (std::string line; std::getline(lines, line);) {
    const size_t at = line.find("clusterIP: ");
    if (at == std::string::npos) continue;
    ++services;
    addresses.insert(line.substr(at + 11));
  }
  EXPECT_EQ(services, 40) << listed.out;
  EXPECT_EQ(addresses.size(), 40u) << listed.out;
}

// (4) Two replicas change one object at once from the same resourceVersion: etcd's
// transaction lets exactly one win; the other gets the conflict error.
TEST_F(ReplicasTest, ConflictingAppliesOnTwoReplicasOneWins) {
  ASSERT_EQ(replicas_[0]->Meshctl({"apply", "-f", "-"}, Namespace("demo")).exit_code, 0);
  ASSERT_EQ(replicas_[0]->Meshctl({"apply", "-f", "-"}, Service("web", 8080)).exit_code, 0);
  auto got = replicas_[1]->Meshctl({"get", "service", "web", "-n", "demo", "-o", "yaml"});
  const size_t at = got.out.find("resourceVersion: ");
  ASSERT_NE(at, std::string::npos) << got.out << got.err;
  const std::string version = got.out.substr(at + 17, got.out.find_first_of("\n", at) - at - 17);
  auto change = [&](int port) {
    return "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: demo, resourceVersion: " + version +
           "}\nspec: {ports: [{port: " + std::to_string(port) + "}], selector: {app: web}}\n";
  };
  // Two meshctl processes at once, through two replicas.
  std::vector<std::unique_ptr<Process>> applies;
  for (int i = 1; i <= 2; ++i) {
    const std::string file = Cat(dir_, "/change", i, ".yaml");
    std::ofstream(file) << change(9000 + i);
    applies.push_back(Process::Start({"cli/meshctl", "--config", replicas_[i]->config_path(), "--server",
                                      replicas_[i]->address(), "apply", "-f", file},
                                     Cat(dir_, "/apply", i, ".log")));
  }
  int won = 0, conflicts = 0;
  for (auto& p : applies) {
    const auto code = p->Wait(milliseconds(20000));
    ASSERT_TRUE(code);
    won += *code == 0;
    conflicts += p->Log().find("was changed: its resourceVersion is") != std::string::npos;
  }
  EXPECT_EQ(won, 1) << applies[0]->Log() << applies[1]->Log();
  EXPECT_EQ(conflicts, 1) << applies[0]->Log() << applies[1]->Log();
  // The winner's port is what every replica serves.
  auto now = replicas_[0]->Meshctl({"get", "service", "web", "-n", "demo", "-o", "yaml"});
  EXPECT_NE(now.out.find(won == 1 && applies[0]->Log().find("configured") != std::string::npos ? "port: 9001"
                                                                                               : "port: 9002"),
            std::string::npos)
      << now.out;
}

// etcd unreachable at start: the control plane says so, keeps trying, and serves once
// etcd answers, with nothing restarted.
TEST(ReplicaStart, AControlPlaneStartedBeforeEtcdWaitsForItThenServes) {
  if (auto why = EtcdCluster::Unavailable(); !why.empty()) GTEST_SKIP() << why;
  const std::string dir = harness::TempDir("wait-for-etcd");
  EtcdCluster etcd(dir + "/etcd", 1);
  ASSERT_EQ(etcd.error(), "");
  etcd.Kill(0);
  auto cp = Process::Start({"control_plane/control_plane", "--listen", "127.0.0.1:0", "--store", etcd.url(),
                            "--client_config", dir + "/config"},
                           dir + "/cp.log", {"MESHPLUG_HOME=" + dir});
  ASSERT_TRUE(cp);
  auto waiting = cp->WaitForLog("waiting for etcd", milliseconds(20000));
  ASSERT_TRUE(waiting) << cp->Log();
  EXPECT_NE(waiting->find("did not answer within 5 s"), std::string::npos) << *waiting;
  ASSERT_EQ(etcd.Restart(0), "");
  EXPECT_TRUE(cp->WaitForLog("\"msg\":\"listening\"", milliseconds(30000))) << cp->Log();
}

}  // namespace
}  // namespace meshplug::integration
