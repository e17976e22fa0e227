// The agent and the control plane as real processes: the agent follows the control plane
// over xDS, applies changes made with meshctl, NACKs what it cannot build and keeps
// serving, rides out a SIGKILLed control plane without dropping traffic, and starts from
// its saved snapshot while the control plane is down.
//
// Traffic: an HTTP upstream in this process stands behind Service web.demo (a Workload
// applied with its address and port), and requests go through the agent's outbound
// listener as an explicit proxy. Every port is on 127.0.0.1, chosen by the kernel.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "control_plane/testing/mesh_fixtures.h"
#include "agent/testing/test_support.h"
#include "agent/xds/workload_identity.h"
#include "envoy/service/discovery/v3/ads.grpc.pb.h"
#include "integration/harness/control_plane_process.h"
#include "integration/harness/process.h"

namespace meshplug::integration {

using namespace harness;  // the process harness is this package's vocabulary
namespace {

using std::chrono::milliseconds;
constexpr milliseconds kStartTimeout(20000);
constexpr milliseconds kDeadline(15000);  // for a change to show up
using agent::testing::Client;
using agent::testing::TestUpstream;

// The mesh every test starts from. Plugins are on; tls-termination is disabled in the
// inbound chains because the agent has no such built-in module yet (see the report).
constexpr const char* kMeshConfig = R"(apiVersion: config.openservicemesh.io/v1alpha2
kind: MeshConfig
metadata: {name: osm-mesh-config}
spec:
  featureFlags: {enablePluginPolicy: true}
  pluginChains:
    inbound-tcp: [{plugin: tls-termination, disable: true}]
    inbound-http: [{plugin: tls-termination, disable: true}]
)";

std::string Mesh(uint16_t upstream_port) {
  return std::string(kMeshConfig) + R"(---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec: {ports: [{port: 8080, protocol: http}], selector: {app: web}}
---
apiVersion: meshplug.io/v1
kind: Workload
metadata: {name: web-backend, namespace: demo, labels: {app: web}}
spec: {address: 127.0.0.1, inboundPort: )" +
         std::to_string(upstream_port) + "}\n";
}

// Started on construction; later starts reuse the port, so agents find it again.
class ControlPlane : public ControlPlaneProcess {
 public:
  explicit ControlPlane(const std::string& dir, std::vector<std::string> flags = {})
      : ControlPlaneProcess(dir, std::move(flags)) {
    EXPECT_EQ(Start(), "");
  }

  void Apply(const std::string& yaml) const {
    auto r = Meshctl({"apply", "-f", "-"}, yaml);
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  }
  // The agent's line of `meshctl proxy status`.
  std::string Status(const std::string& agent) const {
    return harness::ProxyStatusLine(Meshctl({"proxy", "status"}).out, agent);
  }

  // The agent is connected and has ACKed every type the control plane sent it (SYNCED
  // column "n/n").
  bool Synced(const std::string& agent) const {
    const std::vector<std::string> c = harness::ProxyStatusRow(Meshctl({"proxy", "status"}).out, agent);
    if (c.size() < 7 || c[1] != "true") return false;
    const size_t slash = c[6].find('/');
    return slash != std::string::npos && slash > 0 && c[6].substr(0, slash) == c[6].substr(slash + 1);
  }
};

class Agent {
 public:
  // The agent demo/client-1 joining with `bootstrap` (its token buys the first
  // certificate; later starts use the saved identity); `extra` flags override.
  Agent(const std::string& dir, const std::string& bootstrap, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {"agent/agent",         "--bind_address=127.0.0.1", "--outbound_port=0",
                                     "--inbound_port=0",    "--admin_port=0",           "--workers=2",
                                     "--xds_backoff_max=1s", "--bootstrap=" + bootstrap,
                                     "--identity_file=" + dir + "/agent-cache/identity.pem",
                                     "--labels=app=client", "--service_account=client",
                                     "--snapshot_cache=" + dir + "/agent-cache/snapshot.json",
                                     "--admin_token_file=" + dir + "/agent-cache/admin-token"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process_ = Process::Start(argv, dir + "/agent-" + std::to_string(++Starts()) + ".log");
    EXPECT_NE(process_, nullptr);
    auto line = process_->WaitForLog("agent: listening", kStartTimeout);
    EXPECT_TRUE(line.has_value()) << process_->Log();
    if (!line) return;
    auto port = [&](const std::string& key) {
      const size_t at = line->find(key + "=");
      return static_cast<uint16_t>(std::stoi(line->substr(at + key.size() + 1)));
    };
    outbound_ = port("outbound");
    admin_ = port("admin");
    std::ifstream(dir + "/agent-cache/admin-token") >> admin_token_;
  }

  // GET through the outbound listener on a fresh connection; 0 on any failure.
  int Get(const std::string& path = "/", std::string* body = nullptr) const {
    Client c(outbound_, milliseconds(5000));
    auto r = c.Get("web.demo:8080", path);
    if (!r) return 0;
    if (body) *body = r->body();
    return r->result_int();
  }
  // An admin page (with the admin token); "" unless 200.
  std::string Admin(const std::string& path) const {
    Client c(admin_, milliseconds(5000));
    auto r = c.Get("admin", path, "Authorization: Bearer " + admin_token_ + "\r\n");
    return r && r->result_int() == 200 ? r->body() : "";
  }
  // A metric's value from /stats ("" when absent): `series` is the name with labels.
  std::string Metric(const std::string& series) const {
    std::istringstream lines(Admin("/stats"));
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind(series + " ", 0) == 0) return line.substr(series.size() + 1);
    }
    return "";
  }

  uint16_t outbound() const { return outbound_; }
  Process& process() { return *process_; }
  const Process& process() const { return *process_; }

 private:
  static int& Starts() {
    static int n = 0;
    return n;
  }
  std::unique_ptr<Process> process_;
  uint16_t outbound_ = 0, admin_ = 0;
  std::string admin_token_;
};

// The string value of `key` in a config_dump document ("key": "value").
std::string DumpField(const std::string& dump, const std::string& key) {
  const std::string k = "\"" + key + "\": \"";
  const size_t at = dump.find(k);
  if (at == std::string::npos) return "";
  const size_t from = at + k.size();
  return dump.substr(from, dump.find('"', from) - from);
}

// The ordered module names of `chain` in a config_dump document.
std::string ChainLine(const std::string& dump, const std::string& chain) {
  const size_t at = dump.find("\"" + chain + "\": [");
  return at == std::string::npos ? "" : dump.substr(at, dump.find('\n', at) - at);
}

std::string ChainsBlock(const std::string& dump) {
  const size_t from = dump.find("\"chains\": {");
  const size_t to = dump.find("\n},\n", from);
  return from == std::string::npos || to == std::string::npos ? "" : dump.substr(from, to - from);
}

// Runs GETs through the agent on one thread until stopped, counting failures.
class Traffic {
 public:
  explicit Traffic(const Agent& agent) : agent_(agent) {
    thread_ = std::thread([this] {
      // Bounded: at most 200k requests, each with a 5 s limit.
      for (int i = 0; i < 200000 && !stop_; ++i) {
        std::string body;
        const int status = agent_.Get("/", &body);
        if (status == 200 && body == "backend") {
          ++ok_;
        } else {
          ++errors_;
          std::lock_guard lock(mu_);
          last_error_ = "status " + std::to_string(status) + " body " + body;
        }
      }
    });
  }
  ~Traffic() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int ok() const { return ok_; }
  int errors() const { return errors_; }
  std::string last_error() {
    std::lock_guard lock(mu_);
    return last_error_;
  }

 private:
  const Agent& agent_;
  std::atomic<bool> stop_{false};
  std::atomic<int> ok_{0}, errors_{0};
  std::mutex mu_;
  std::string last_error_;
  std::thread thread_;
};

class AgentXdsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : name) c = c == '/' ? '-' : c;
    dir_ = TempDir(name);
    upstream_ = std::make_unique<TestUpstream>("backend");
    cp_ = std::make_unique<ControlPlane>(dir_, ControlPlaneFlags());
    ASSERT_EQ(cp_->Meshctl({"namespace", "add", "demo"}).exit_code, 0);
    cp_->Apply(Mesh(upstream_->port()));
    std::string error;
    bootstrap_ = cp_->JoinBootstrap("demo", "client-1", "client", &error);
    ASSERT_FALSE(bootstrap_.empty()) << error;
  }

  virtual std::vector<std::string> ControlPlaneFlags() const { return {}; }

  std::unique_ptr<Agent> StartAgent() {
    return std::make_unique<Agent>(dir_, bootstrap_, std::vector<std::string>{"--xds_protocol=" + GetParam()});
  }

  // The agent serves traffic on the control plane's configuration.
  void WaitServing(const Agent& agent) {
    ASSERT_TRUE(Eventually([&] { return agent.Get() == 200; }, kDeadline))
        << agent.Admin("/config_dump") << agent.process().Log();
  }

  std::string cache() const { return dir_ + "/agent-cache/snapshot.json"; }

  std::string dir_;
  std::string bootstrap_;  // demo/client-1's, from `meshctl workload token --bootstrap`
  std::unique_ptr<TestUpstream> upstream_;
  std::unique_ptr<ControlPlane> cp_;
};

TEST_P(AgentXdsTest, AChangeAppliedWithMeshctlReachesTheAgentAndBothDumpsAgree) {
  auto agent = StartAgent();
  WaitServing(*agent);
  EXPECT_EQ(ChainLine(agent->Admin("/config_dump"), "outbound-http"),
            "\"outbound-http\": [\"http-routing\", \"metrics\", \"tracing\", \"logging\", \"circuit-breaker\", "
            "\"http-load-balancing\", \"http-default\"]");

  cp_->Apply(std::string(kMeshConfig) + "    outbound-http: [{plugin: tracing, disable: true}]\n");
  const auto applied = std::chrono::steady_clock::now();
  const std::string expected =
      "\"outbound-http\": [\"http-routing\", \"metrics\", \"logging\", \"circuit-breaker\", "
      "\"http-load-balancing\", \"http-default\"]";
  ASSERT_TRUE(
      Eventually([&] { return ChainLine(agent->Admin("/config_dump"), "outbound-http") == expected; }, kDeadline))
      << agent->Admin("/config_dump") << agent->process().Log();
  const auto took = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - applied);
  std::printf("apply -> agent /config_dump: %lld ms\n", static_cast<long long>(took.count()));
  EXPECT_EQ(agent->Get(), 200);

  // `meshctl proxy config_dump` and the agent's /config_dump: the same chains, byte for
  // byte, and the same snapshot (its version is each side's content hash).
  std::string ours, theirs;
  ASSERT_TRUE(Eventually(
      [&] {
        ours = agent->Admin("/config_dump");
        auto r = cp_->Meshctl({"proxy", "config_dump", "demo/client-1"});
        theirs = r.exit_code == 0 ? r.out : "";
        return ChainsBlock(ours) == ChainsBlock(theirs) && !ours.empty();
      },
      kDeadline))
      << ours << "\n---\n"
      << theirs;
  EXPECT_EQ(ChainsBlock(ours), ChainsBlock(theirs));
  EXPECT_EQ(ours, theirs);

  // Every type ACKed; metrics say so.
  ASSERT_TRUE(Eventually([&] { return cp_->Synced("demo/client-1"); }, kDeadline)) << cp_->Status("demo/client-1");
  EXPECT_NE(cp_->Status("demo/client-1").find(" true "), std::string::npos);
  EXPECT_EQ(agent->Metric("meshplug_agent_xds_connected"), "1");
  EXPECT_EQ(agent->Metric("meshplug_agent_xds_updates_applied_total{source=\"xds\"}"), "2");
  EXPECT_NE(agent->Metric("meshplug_agent_xds_update_seconds_count"), "");
  EXPECT_NE(agent->Metric("meshplug_agent_snapshot_info{version=\"" + DumpField(ours, "version") + "\"}"), "")
      << agent->Admin("/stats");
}

TEST_P(AgentXdsTest, APluginThatCannotLoadIsRefusedAtApply) {
  auto agent = StartAgent();
  WaitServing(*agent);
  const std::string before = agent->Admin("/config_dump");
  // Valid Lua, but its top level fails: every agent would fail to load it.
  auto r = cp_->Meshctl({"apply", "-f", "-"},
                        control_plane::testing::PluginYaml("boom", 115, "error('boom: this plugin fails to load')"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("spec.script: does not load: plugin boom: boom:1: boom: this plugin fails to load"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(agent->Admin("/config_dump"), before);
  EXPECT_EQ(agent->Get(), 200);
}

// A plugin that loads at the control plane but not on this agent (it runs with lower Lua
// limits): only that plugin is isolated — its chain refuses requests, the NACK says why —
// and every later change still reaches the agent.
TEST_P(AgentXdsTest, APluginThatFailsOnlyOnTheAgentIsIsolatedAndLaterChangesStillArrive) {
  auto agent = std::make_unique<Agent>(
      dir_, bootstrap_, std::vector<std::string>{"--xds_protocol=" + GetParam(), "--lua_instructions_per_call=20000"});
  WaitServing(*agent);
  cp_->Apply(control_plane::testing::PluginYaml("heavy", 115, "local n = 0\nfor i = 1, 100000 do n = n + i end") +
             "---\n" +
             control_plane::testing::PluginChainYaml("demo", "heavy-chain", "outbound-http", "heavy",
                                                     control_plane::testing::AppSelector("client")));
  std::string body;
  ASSERT_TRUE(Eventually([&] { return agent->Get("/", &body) == 503; }, kDeadline)) << agent->process().Log();
  EXPECT_EQ(body, "plugin heavy is not available\n");
  std::string status;
  ASSERT_TRUE(Eventually(
      [&] {
        status = cp_->Status("demo/client-1");
        return status.find("did not load") != std::string::npos;
      },
      kDeadline))
      << cp_->Meshctl({"proxy", "status"}).out;
  std::printf("meshctl proxy status: %s\n", status.c_str());
  EXPECT_NE(status.find("PluginScript"), std::string::npos) << status;
  EXPECT_NE(status.find("instruction limit of 20000 exceeded"), std::string::npos) << status;

  // Not frozen: a new Service reaches the agent while the plugin stays isolated.
  cp_->Apply("apiVersion: v1\nkind: Service\nmetadata: {name: later, namespace: demo}\n"
             "spec: {ports: [{port: 9090}], selector: {app: later}}\n");
  ASSERT_TRUE(Eventually([&] { return agent->Admin("/config_dump").find("later.demo") != std::string::npos; },
                         kDeadline));

  // A version that loads replaces the stand-in.
  cp_->Apply(control_plane::testing::PluginYaml("heavy", 115, "local n = 1"));
  ASSERT_TRUE(Eventually([&] { return agent->Get() == 200; }, kDeadline)) << agent->process().Log();
  ASSERT_TRUE(Eventually([&] { return cp_->Synced("demo/client-1"); }, kDeadline)) << cp_->Status("demo/client-1");
}

// A script changed alone keeps its resource's name (the plugin's) and every chain set as it
// was: the agent must still run the new script, not the one it compiled under that name.
TEST_P(AgentXdsTest, AChangedScriptRunsAtOnceAndTheChainsStayAsTheyWere) {
  auto agent = StartAgent();
  WaitServing(*agent);
  auto answering = [](const std::string& text) {
    return control_plane::testing::PluginYaml("stamp", 115,
                                              "function on_request(req, ctx) respond(200, {}, '" + text + "') end");
  };
  cp_->Apply(answering("v1") + "---\n" +
             control_plane::testing::PluginChainYaml("demo", "stamp-chain", "outbound-http", "stamp",
                                                     control_plane::testing::AppSelector("client")));
  std::string body;
  ASSERT_TRUE(Eventually([&] { return agent->Get("/", &body) == 200 && body == "v1"; }, kDeadline))
      << body << agent->process().Log();
  const std::string chains = ChainLine(agent->Admin("/config_dump"), "outbound-http");
  ASSERT_NE(chains.find("\"stamp\""), std::string::npos) << chains;
  const std::string chain_sets = "meshplug_agent_xds_responses_total{type=\"ChainSet\"}";
  const std::string chain_sets_before = agent->Metric(chain_sets);
  ASSERT_NE(chain_sets_before, "") << agent->Admin("/stats");

  cp_->Apply(answering("v2"));
  ASSERT_TRUE(Eventually([&] { return agent->Get("/", &body) == 200 && body == "v2"; }, kDeadline))
      << body << agent->process().Log();
  EXPECT_EQ(ChainLine(agent->Admin("/config_dump"), "outbound-http"), chains);
  EXPECT_EQ(agent->Metric(chain_sets), chain_sets_before) << "no chain set was sent for the script";
  ASSERT_TRUE(Eventually([&] { return cp_->Synced("demo/client-1"); }, kDeadline)) << cp_->Status("demo/client-1");
}

TEST_P(AgentXdsTest, TrafficKeepsFlowingThroughAControlPlaneSigkillAndRestart) {
  auto agent = StartAgent();
  WaitServing(*agent);
  Traffic traffic(*agent);
  ASSERT_TRUE(Eventually([&] { return traffic.ok() >= 20; }, kDeadline));

  cp_->Kill();
  ASSERT_TRUE(Eventually([&] { return agent->Metric("meshplug_agent_xds_connected") == "0"; }, kDeadline));
  const int at_kill = traffic.ok();
  ASSERT_TRUE(Eventually([&] { return traffic.ok() >= at_kill + 50; }, kDeadline));
  // Reconnect attempts back off: a few attempts while down, not a busy loop.
  ASSERT_TRUE(
      Eventually([&] { return agent->process().Log().find("xDS reconnecting") != std::string::npos; }, kDeadline));

  cp_->Start();
  ASSERT_TRUE(Eventually(
      [&] {
        return agent->Metric("meshplug_agent_xds_connected") == "1" &&
               cp_->Status("demo/client-1").find(" true ") != std::string::npos;
      },
      kDeadline))
      << agent->process().Log();
  const int at_restart = traffic.ok();
  ASSERT_TRUE(Eventually([&] { return traffic.ok() >= at_restart + 50; }, kDeadline));

  // Converged: a change made after the restart reaches the agent.
  cp_->Apply(std::string(kMeshConfig) + "    outbound-http: [{plugin: logging, disable: true}]\n");
  ASSERT_TRUE(Eventually(
      [&] {
        return ChainLine(agent->Admin("/config_dump"), "outbound-http").find("\"logging\"") == std::string::npos &&
               cp_->Synced("demo/client-1");
      },
      kDeadline))
      << agent->Admin("/config_dump") << cp_->Status("demo/client-1");
  const int at_change = traffic.ok();
  ASSERT_TRUE(Eventually([&] { return traffic.ok() >= at_change + 20; }, kDeadline));
  traffic.Stop();
  EXPECT_EQ(traffic.errors(), 0) << traffic.last_error();
  std::printf("requests through the kill and restart: %d ok, %d failed\n", traffic.ok(), traffic.errors());
}

TEST_P(AgentXdsTest, AnAgentStartedWhileTheControlPlaneIsDownServesItsSavedSnapshot) {
  std::string version;
  {
    auto agent = StartAgent();
    WaitServing(*agent);
    ASSERT_TRUE(Eventually([&] { return std::filesystem::exists(cache()); }, kDeadline));
    version = DumpField(agent->Admin("/config_dump"), "version");
    agent->process().Signal(SIGTERM);
    ASSERT_EQ(agent->process().Wait(milliseconds(15000)), 0) << agent->process().Log();
  }
  cp_->Kill();

  auto agent = StartAgent();
  WaitServing(*agent);
  EXPECT_EQ(DumpField(agent->Admin("/config_dump"), "version"), version);
  // Set once the apply returns, a moment after the agent serves with it.
  EXPECT_TRUE(Eventually([&] { return agent->Metric("meshplug_agent_snapshot_from_cache") == "1"; }, kDeadline));
  EXPECT_EQ(agent->Metric("meshplug_agent_xds_connected"), "0");
  EXPECT_NE(agent->process().Log().find("serving the saved snapshot"), std::string::npos);

  // The control plane returns: the agent resumes from the saved versions and converges.
  cp_->Start();
  ASSERT_TRUE(Eventually([&] { return agent->Metric("meshplug_agent_xds_connected") == "1"; }, kDeadline));
  cp_->Apply(std::string(kMeshConfig) + "    outbound-http: [{plugin: metrics, disable: true}]\n");
  ASSERT_TRUE(Eventually(
      [&] { return ChainLine(agent->Admin("/config_dump"), "outbound-http").find("\"metrics\"") == std::string::npos; },
      kDeadline))
      << agent->process().Log();
  // Set just after the new chains are in place.
  EXPECT_TRUE(Eventually([&] { return agent->Metric("meshplug_agent_snapshot_from_cache") == "0"; }, kDeadline));
  EXPECT_EQ(agent->Get(), 200);
}

TEST_P(AgentXdsTest, TheIdentityCanComeFromABootstrapFile) {
  // meshctl's bootstrap (node, xds address and CA, join token) with the rest of the node.
  std::stringstream joined;
  joined << std::ifstream(bootstrap_).rdbuf();
  std::string text = joined.str();
  const std::string node = "node:\n  id: client-1\n  namespace: demo\n";
  ASSERT_NE(text.find(node), std::string::npos) << text;
  text.replace(text.find(node), node.size(),
               node + "  labels: {app: client}\n  service_account: client\n  app_ports: [9000]\n");
  text.replace(text.find("xds:\n"), 5, "xds:\n  protocol: " + GetParam() + "\n");
  const std::string bootstrap = dir_ + "/bootstrap.yaml";
  std::ofstream(bootstrap) << text << "snapshot_cache: " << cache() << "\n";
  Agent agent(dir_, bootstrap, {"--labels=", "--service_account="});
  WaitServing(agent);
  ASSERT_TRUE(Eventually([&] { return cp_->Synced("demo/client-1"); }, kDeadline));
  EXPECT_NE(cp_->Status("demo/client-1").find(" " + GetParam() + " "), std::string::npos)
      << cp_->Status("demo/client-1");
  ASSERT_TRUE(Eventually([&] { return std::filesystem::exists(cache()); }, kDeadline));
  // The control plane registered the workload from the node metadata.
  auto wl = cp_->Meshctl({"get", "workload", "client-1", "-n", "demo", "-o", "yaml"});
  ASSERT_EQ(wl.exit_code, 0) << wl.err;
  EXPECT_NE(wl.out.find("serviceAccount: client"), std::string::npos) << wl.out;
  EXPECT_NE(wl.out.find("address: 127.0.0.1"), std::string::npos) << wl.out;
  EXPECT_NE(wl.out.find("9000"), std::string::npos) << wl.out;
}

// Identity: the agent joins once with its token, shows up with its SPIFFE ID, and no one
// else can use its token, its certificate or its node id.
TEST_P(AgentXdsTest, AnAgentGetsOnlyItsOwnIdentityAndNoOneElseGetsIt) {
  auto agent = StartAgent();
  WaitServing(*agent);
  ASSERT_TRUE(Eventually([&] { return cp_->Synced("demo/client-1"); }, kDeadline));
  EXPECT_NE(cp_->Status("demo/client-1").find(" spiffe://cluster.local/ns/demo/sa/client "), std::string::npos)
      << cp_->Status("demo/client-1");
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/agent-cache/identity.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // The same (used) token again, without the saved identity: refused by the control plane.
  Agent replay(dir_, bootstrap_, {"--identity_file=none", "--admin_token_file=" + dir_ + "/replay-token",
                                  "--snapshot_cache=none", "--xds_protocol=" + GetParam()});
  ASSERT_TRUE(replay.process().WaitForLog("already used", kDeadline)) << replay.process().Log();
  EXPECT_NE(replay.Get(), 200);
  // client-1's key and certificate on an ADS stream that claims client-2; plaintext; TLS
  // without a certificate: no snapshot for any of them.
  auto stolen = agent::xds::ReadIdentityFile(dir_ + "/agent-cache/identity.pem");
  ASSERT_TRUE(stolen.ok()) << stolen.status();
  auto stream_status = [&](std::shared_ptr<grpc::ChannelCredentials> creds) {
    auto stub = envoy::service::discovery::v3::AggregatedDiscoveryService::NewStub(
        grpc::CreateChannel(cp_->address(), std::move(creds)));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto stream = stub->StreamAggregatedResources(&ctx);
    envoy::service::discovery::v3::DiscoveryRequest req;
    req.mutable_node()->set_id("client-2");
    (*req.mutable_node()->mutable_metadata()->mutable_fields())["namespace"].set_string_value("demo");
    req.set_type_url("type.googleapis.com/meshplug.v1.ChainSet");
    stream->Write(req);
    envoy::service::discovery::v3::DiscoveryResponse resp;
    EXPECT_FALSE(stream->Read(&resp)) << resp.DebugString();
    return stream->Finish();
  };
  grpc::SslCredentialsOptions with_cert{stolen->bundle_pem, stolen->key_pem, stolen->chain_pem};
  const grpc::Status impostor = stream_status(grpc::SslCredentials(with_cert));
  EXPECT_EQ(impostor.error_code(), grpc::StatusCode::PERMISSION_DENIED) << impostor.error_message();
  EXPECT_EQ(impostor.error_message(),
            "this agent's certificate is for demo/client-1; it may not receive the configuration of demo/client-2");
  EXPECT_TRUE(cp_->process().WaitForLog("\"msg\":\"xds stream refused\",\"node\":\"demo/client-2\"", kDeadline));
  grpc::SslCredentialsOptions no_cert;
  no_cert.pem_root_certs = stolen->bundle_pem;
  EXPECT_EQ(stream_status(grpc::SslCredentials(no_cert)).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(stream_status(grpc::InsecureChannelCredentials()).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(cp_->Status("demo/client-2"), "");
  // Nothing secret in what anyone can see: logs, dumps, saved snapshot, resources.
  const std::string token = bootstrap_.empty() ? "" : [&] {
    std::ifstream in(bootstrap_);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("join_token: ", 0) == 0) return line.substr(12);
    }
    return std::string();
  }();
  ASSERT_FALSE(token.empty());
  std::stringstream cache_text;
  cache_text << std::ifstream(cache()).rdbuf();
  for (const std::string& seen :
       {cp_->process().Log(), agent->process().Log(), replay.process().Log(),
        agent->Admin("/config_dump"), cp_->Meshctl({"proxy", "config_dump", "demo/client-1"}).out,
        cp_->Meshctl({"get", "workloads", "-A", "-o", "yaml"}).out, cache_text.str()}) {
    EXPECT_EQ(seen.find("PRIVATE KEY"), std::string::npos) << seen;
    EXPECT_EQ(seen.find(token.substr(5, 24)), std::string::npos) << seen;
  }
}

// Certificates that live 10 s are renewed at half their life, twice within 15 s, while
// requests keep flowing on the same xDS stream.
TEST_P(AgentXdsTest, ShortLivedCertificatesAreRenewedWithoutDroppingAnything) {
  cp_->Apply(std::string(kMeshConfig) + "  certificate: {serviceCertValidityDuration: 10s}\n");
  auto agent = StartAgent();
  WaitServing(*agent);
  Traffic traffic(*agent);
  const std::string renewed = "meshplug_agent_certificate_requests_total{kind=\"renewal\",result=\"ok\"}";
  ASSERT_TRUE(Eventually([&] { return std::atoi(agent->Metric(renewed).c_str()) >= 2; }, milliseconds(20000)))
      << agent->process().Log();
  traffic.Stop();
  EXPECT_EQ(traffic.errors(), 0) << traffic.last_error();
  EXPECT_GT(traffic.ok(), 0);
  EXPECT_EQ(agent->Metric("meshplug_agent_xds_streams_total{protocol=\"" + GetParam() + "\"}"), "1");
  std::printf("renewals: %s, requests during them: %d ok, %d failed\n", agent->Metric(renewed).c_str(), traffic.ok(),
              traffic.errors());
}

INSTANTIATE_TEST_SUITE_P(Protocols, AgentXdsTest, ::testing::Values("delta", "sotw"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

// A control plane that PINGs a connection after 1 s of silence.
class SilentAgentTest : public AgentXdsTest {
 protected:
  std::vector<std::string> ControlPlaneFlags() const override { return {"--keepalive_s=1"}; }
};

// An agent stopped with SIGSTOP answers nothing, and its connection stays open: what an
// agent whose host vanished looks like to the control plane. It is shown disconnected
// once a PING goes unanswered (before, after gRPC's two hours), and is back in sync when
// it runs again.
TEST_P(SilentAgentTest, AnAgentThatStopsAnsweringIsDisconnectedAndBackWhenItAnswers) {
  auto agent = StartAgent();
  WaitServing(*agent);
  ASSERT_TRUE(Eventually([&] { return cp_->Synced("demo/client-1"); }, kDeadline)) << cp_->Status("demo/client-1");
  // The CONNECTED column says false (not: no row, or meshctl failed).
  const auto disconnected = [&] {
    const auto row = harness::ProxyStatusRow(cp_->Meshctl({"proxy", "status"}).out, "demo/client-1");
    return row.size() > 1 && row[1] == "false";
  };
  agent->process().Signal(SIGSTOP);
  struct Resume {  // whatever happens below, the agent ends promptly (SIGTERM waits for SIGCONT)
    Agent& agent;
    ~Resume() { agent.process().Signal(SIGCONT); }
  } resume{*agent};
  const auto stopped = std::chrono::steady_clock::now();
  ASSERT_TRUE(Eventually(disconnected, kDeadline)) << cp_->Status("demo/client-1");
  EXPECT_NE(cp_->process().Log().find("\"msg\":\"agent disconnected\""), std::string::npos);
  std::printf("stopped -> disconnected: %lld ms\n",
              static_cast<long long>(
                  std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - stopped).count()));

  agent->process().Signal(SIGCONT);
  EXPECT_TRUE(Eventually([&] { return cp_->Synced("demo/client-1"); }, kDeadline))
      << cp_->Status("demo/client-1") << agent->process().Log();
  EXPECT_EQ(agent->Get(), 200);
}

INSTANTIATE_TEST_SUITE_P(Protocols, SilentAgentTest, ::testing::Values("delta", "sotw"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace meshplug::integration
