// The xDS client against the real ADS server (store, controller, translation and snapshot
// cache in process, over real gRPC on 127.0.0.1), and against a scripted server for what
// the real one never sends (incomplete updates, malformed resources).
#include "agent/xds/xds_client.h"

#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>

#include "agent/xds/bootstrap.h"
#include "agent/xds/saved_config.h"
#include "common/config_dump.h"
#include "common/eventually.h"
#include "common/log.h"
#include "control_plane/api/resource_api.h"
#include "control_plane/controller/mesh_controller.h"
#include "control_plane/store/sqlite_store.h"
#include "control_plane/testing/mesh_fixtures.h"
#include "control_plane/xds/ads_service.h"
#include "control_plane/xds/resources.h"

namespace meshplug::agent::xds {
namespace {

namespace discovery = envoy::service::discovery::v3;
namespace cp = ::meshplug::xds;  // the control plane's
using std::chrono::milliseconds;
constexpr milliseconds kWait(10000);

const std::string kMesh =
    std::string(testing_fixtures::kCurlHttpbinMesh) + "---\n" + testing_fixtures::kPluginPolicyOn;

constexpr const char* kBrokenPlugin = R"(
apiVersion: plugin.flomesh.io/v1alpha1
kind: Plugin
metadata: {name: broken}
spec: {priority: 115, script: "function on_request(req, ctx) end"}
---
apiVersion: plugin.flomesh.io/v1alpha1
kind: PluginChain
metadata: {name: broken-chain, namespace: curl}
spec:
  chains: [{name: outbound-http, plugins: [broken]}]
  selectors: {podSelector: {matchLabels: {app: curl}}}
)";

envoy::config::core::v3::Node CurlNode(const std::string& ns = "curl") {
  Bootstrap b;
  b.node_id = "curl-1";
  b.namespace_ = ns;
  b.labels = {{"app", "curl"}};
  b.service_account = "curl";
  b.address = "127.0.0.2";
  return MakeNode(b, 15003);
}

std::string TestDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::filesystem::path dir = std::filesystem::path(base ? base : "/tmp") / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

// Stands in for Agent::Apply: records what it is given, fails on demand.
class FakeAgent {
 public:
  absl::Status Apply(v1::Snapshot s) {
    std::lock_guard lock(mu_);
    for (const auto& m : s.chains().outbound_http()) {
      if (m.has_script() && fail_plugin_ == m.name()) {
        return absl::InvalidArgumentError("chain outbound-http module \"" + m.name() + "\": script does not load");
      }
    }
    applied_.push_back(std::move(s));
    return absl::OkStatus();
  }
  void FailPlugin(const std::string& name) {
    std::lock_guard lock(mu_);
    fail_plugin_ = name;
  }
  size_t count() const {
    std::lock_guard lock(mu_);
    return applied_.size();
  }
  v1::Snapshot last() const {
    std::lock_guard lock(mu_);
    return applied_.empty() ? v1::Snapshot() : applied_.back();
  }
  XdsClient::ApplyFn Fn() {
    return [this](v1::Snapshot s) { return Apply(std::move(s)); };
  }

 private:
  mutable std::mutex mu_;
  std::vector<v1::Snapshot> applied_;
  std::string fail_plugin_;
};

std::vector<std::string> OutboundHttp(const v1::Snapshot& s) {
  std::vector<std::string> out;
  for (const auto& m : s.chains().outbound_http()) out.push_back(m.name());
  return out;
}

std::set<std::string> Services(const v1::Snapshot& s) {
  std::set<std::string> out;
  for (const auto& svc : s.services()) out.insert(svc.name() + (svc.inbound() ? "|inbound" : ""));
  return out;
}

XdsClientOptions FastOptions(const std::string& address, XdsProtocol protocol) {
  XdsClientOptions o;
  o.server_address = address;
  o.protocol = protocol;
  o.node = CurlNode();
  o.backoff_base = milliseconds(20);
  o.backoff_max = milliseconds(200);
  o.connect_timeout = milliseconds(2000);
  o.initial_fetch_timeout = milliseconds(5000);
  // One push is one update even on a loaded machine.
  o.settle_max = milliseconds(2000);
  // The control plane sends no Endpoints for a cluster without endpoints (see the report:
  // its ResourceInterner confuses them with the Cluster of the same bytes).
  o.endpoints_warming = milliseconds(200);
  return o;
}

// The control plane in process; its gRPC server can be stopped and restarted on the same
// port while the store, controller, cache and registry live on.
class ControlPlaneTest : public testing::TestWithParam<XdsProtocol> {
 protected:
  void SetUp() override {
    if (std::getenv("XDS_TEST_DEBUG")) log::SetLevel(log::Level::kDebug);
    dir_ = TestDir(testing::UnitTest::GetInstance()->current_test_info()->name());
    std::string name = testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : name) c = c == '/' ? '_' : c;
    store_ = std::move(*store::SqliteStore::Open(dir_ + "/store.db"));
    api_ = std::make_unique<api::ResourceApi>(*store_);
    Apply(kMesh);
    controller_ = std::make_unique<controller::MeshController>(
        *store_, cache_, registry_, controller::Options{milliseconds(5), milliseconds(50), milliseconds(30000)});
    ASSERT_TRUE(controller_->Start().ok());
    ads_ = std::make_unique<cp::AdsService>(cache_, registry_, *controller_);
    StartServer();
  }

  void TearDown() override {
    StopServer();
    controller_->Stop();
  }

  // Options for an agent that saves each applied snapshot to `cache_path()`.
  XdsClientOptions CachingOptions() const {
    XdsClientOptions o = FastOptions(address(), GetParam());
    o.cache_path = cache_path();
    return o;
  }
  std::string cache_path() const { return dir_ + "/agent/snapshot.json"; }

  // Runs an agent until it is in sync and its snapshot is saved; the snapshot's version.
  std::string SaveSnapshot() {
    FakeAgent agent;
    XdsClient client(CachingOptions(), agent.Fn(), nullptr);
    client.Start();
    if (!Eventually([&] { return agent.count() == 1 && InSync(); }) ||
        !Eventually([&] { return std::filesystem::exists(cache_path()); })) {
      ADD_FAILURE() << "the agent did not save its snapshot";
      return "";
    }
    return agent.last().version();
  }

  void StartServer() {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:" + std::to_string(port_), grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(ads_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    port_ = port;
  }

  void StopServer() {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
    server_.reset();
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  void Apply(const std::string& yaml) {
    v1::ApplyRequest req;
    req.add_manifests()->set_content(yaml);
    auto r = api_->Apply(req);
    ASSERT_TRUE(r.ok()) << r.status();
    if (controller_) {
      ASSERT_TRUE(controller_->WaitForRevision(r->revision(), kWait));
    }
  }

  void Delete(const std::string& kind, const std::string& ns, const std::string& name) {
    v1::DeleteRequest req;
    auto* ref = req.add_refs();
    ref->set_kind(kind);
    ref->set_namespace_(ns);
    ref->set_name(name);
    auto r = api_->Delete(req);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_TRUE(controller_->WaitForRevision(r->revision(), kWait));
  }

  std::optional<v1::AgentStatus> AgentStatus(const std::string& agent = "curl/curl-1") const {
    for (const auto& a : registry_.List()) {
      if (a.agent() == agent) return a;
    }
    return std::nullopt;
  }

  // Every type the control plane sent has been ACKed at the version it sent.
  bool InSync(const std::string& agent = "curl/curl-1") const {
    auto a = AgentStatus(agent);
    if (!a || !a->connected() || a->types_size() == 0) return false;
    for (const auto& t : a->types()) {
      if (t.sent_version().empty() || t.acked_version() != t.sent_version() || !t.nack_message().empty()) return false;
    }
    return true;
  }

  // What `meshctl proxy config_dump` prints for the agent.
  std::string ControlPlaneDump(const std::string& agent = "curl/curl-1") const {
    auto r = cache_.Get(agent);
    return r ? ConfigDumpJson(cp::ToSnapshot(*r)) : "";
  }

  std::string dir_;
  std::unique_ptr<store::SqliteStore> store_;
  std::unique_ptr<api::ResourceApi> api_;
  cp::SnapshotCache cache_;
  cp::AgentRegistry registry_;
  std::unique_ptr<controller::MeshController> controller_;
  std::unique_ptr<cp::AdsService> ads_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

std::string ChainsBlock(const std::string& dump) {
  const size_t from = dump.find("\"chains\": {");
  const size_t to = dump.find("\n},\n", from);
  return from == std::string::npos || to == std::string::npos ? "" : dump.substr(from, to - from);
}

TEST_P(ControlPlaneTest, AppliesTheCompleteSnapshotOnceAndAcksEveryType) {
  FakeAgent agent;
  XdsClient client(FastOptions(address(), GetParam()), agent.Fn(), nullptr);
  client.Start();
  ASSERT_TRUE(client.WaitFor([](const XdsClientStatus& s) { return s.applies >= 1; }, kWait));
  ASSERT_TRUE(Eventually([&] { return InSync(); }));
  EXPECT_EQ(agent.count(), 1u);  // one push, one swap
  const v1::Snapshot s = agent.last();
  EXPECT_EQ(Services(s), (std::set<std::string>{"curl.curl", "curl.curl|inbound", "httpbin.httpbin"}));
  EXPECT_EQ(s.settings().workload().name(), "curl-1");
  EXPECT_EQ(s.clusters_size(), 3);
  EXPECT_EQ(OutboundHttp(s).front(), "http-routing");

  // What the agent runs is what the control plane has for it: the config dumps agree on
  // the chains byte for byte, and on the whole snapshot.
  const std::string ours = ConfigDumpJson(s);
  const std::string theirs = ControlPlaneDump();
  EXPECT_EQ(ChainsBlock(ours), ChainsBlock(theirs));
  EXPECT_FALSE(ChainsBlock(ours).empty());
  v1::Snapshot cp = cp::ToSnapshot(*cache_.Get("curl/curl-1"));
  v1::Snapshot mine = s;
  cp.clear_version();
  mine.clear_version();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(cp, mine)) << cp.DebugString() << mine.DebugString();
  EXPECT_EQ(s.endpoints_size(), cp.endpoints_size());

  auto st = client.status();
  EXPECT_EQ(st.state, XdsConnectionState::kConnected);
  EXPECT_EQ(st.active_version, s.version());
  EXPECT_EQ(st.nacks, 0u);
  EXPECT_FALSE(st.from_cache);
}

TEST_P(ControlPlaneTest, ChangesAndRemovalsArrive) {
  FakeAgent agent;
  XdsClient client(FastOptions(address(), GetParam()), agent.Fn(), nullptr);
  client.Start();
  ASSERT_TRUE(Eventually([&] { return agent.count() == 1 && InSync(); }));

  Delete("Service", "httpbin", "httpbin");
  ASSERT_TRUE(Eventually([&] { return agent.count() == 2 && InSync(); }));
  EXPECT_EQ(Services(agent.last()), (std::set<std::string>{"curl.curl", "curl.curl|inbound"}));
  EXPECT_EQ(agent.last().clusters_size(), 2);
  EXPECT_EQ(agent.last().endpoints_size(), 2);

  Apply(R"(
apiVersion: config.openservicemesh.io/v1alpha2
kind: MeshConfig
metadata: {name: osm-mesh-config}
spec:
  featureFlags: {enablePluginPolicy: true}
  pluginChains: {outbound-http: [{plugin: tracing, disable: true}]}
)");
  ASSERT_TRUE(Eventually([&] { return agent.count() == 3 && InSync(); }));
  EXPECT_EQ(OutboundHttp(agent.last()),
            (std::vector<std::string>{"http-routing", "metrics", "logging", "circuit-breaker", "http-load-balancing",
                                      "http-default"}));
}

TEST_P(ControlPlaneTest, AFailedBuildIsNackedWithItsErrorAndTheOldSetStays) {
  FakeAgent agent;
  agent.FailPlugin("broken");
  XdsClient client(FastOptions(address(), GetParam()), agent.Fn(), nullptr);
  client.Start();
  ASSERT_TRUE(Eventually([&] { return agent.count() == 1 && InSync(); }));
  const std::string good = agent.last().version();

  Apply(kBrokenPlugin);
  ASSERT_TRUE(client.WaitFor([](const XdsClientStatus& s) { return s.nacks >= 1; }, kWait));
  ASSERT_TRUE(Eventually([&] {
    auto a = AgentStatus();
    return a && a->last_nack().find("script does not load") != std::string::npos;
  }));
  auto a = AgentStatus();
  bool chain_set_nacked = false;
  for (const auto& t : a->types()) {
    if (t.type_url() == xds::UrlOf<v1::ChainSet>()) {
      chain_set_nacked = t.nack_message().find("module \"broken\": script does not load") != std::string::npos;
    }
  }
  EXPECT_TRUE(chain_set_nacked) << a->DebugString();
  // The script and the chain naming it came as one update: nothing was swapped in.
  EXPECT_EQ(agent.count(), 1u);
  EXPECT_EQ(client.status().active_version, good);
  EXPECT_NE(client.status().last_error.find("script does not load"), std::string::npos);

  // Fixed upstream: the configuration is the one already running, so nothing is rebuilt,
  // and every type is ACKed again.
  Delete("PluginChain", "curl", "broken-chain");
  ASSERT_TRUE(Eventually([&] { return InSync(); })) << AgentStatus()->DebugString();
  EXPECT_EQ(agent.count(), 1u);
  EXPECT_EQ(client.status().active_version, good);
}

TEST_P(ControlPlaneTest, ReconnectResumesWithoutResendingAndGetsWhatChangedMeanwhile) {
  FakeAgent agent;
  XdsClient client(FastOptions(address(), GetParam()), agent.Fn(), nullptr);
  client.Start();
  ASSERT_TRUE(Eventually([&] { return agent.count() == 1 && InSync(); }));
  const int64_t responses = registry_.Responses("curl/curl-1");

  // Restart with nothing changed: the stream resumes and nothing is sent.
  StopServer();
  ASSERT_TRUE(client.WaitFor([](const XdsClientStatus& s) { return s.disconnects >= 1; }, kWait));
  StartServer();
  ASSERT_TRUE(client.WaitFor([](const XdsClientStatus& s) { return s.connects >= 2; }, kWait));
  ASSERT_TRUE(Eventually([&] { return InSync(); }));
  // Delta sends nothing. State of the world should not either (version_info matches), but
  // the control plane resends every type on a new stream (see the report:
  // ads_service.cc compares the first request with a default TypeState); the agent sees
  // the same content and rebuilds nothing.
  if (GetParam() == XdsProtocol::kDelta) {
    EXPECT_EQ(registry_.Responses("curl/curl-1"), responses);
  }
  EXPECT_EQ(agent.count(), 1u);
  const int64_t before_change = registry_.Responses("curl/curl-1");

  // A change while the control plane's server is down arrives on reconnect, alone.
  StopServer();
  ASSERT_TRUE(client.WaitFor([](const XdsClientStatus& s) { return s.disconnects >= 2; }, kWait));
  Delete("Service", "httpbin", "httpbin");
  StartServer();
  ASSERT_TRUE(Eventually([&] { return agent.count() == 2 && InSync(); }));
  EXPECT_EQ(Services(agent.last()), (std::set<std::string>{"curl.curl", "curl.curl|inbound"}));
  // Only what changed is sent: clusters, endpoints and services (delta: the removals; state
  // of the world: those types whole), not the chains or settings.
  EXPECT_LE(registry_.Responses("curl/curl-1") - (GetParam() == XdsProtocol::kDelta ? responses : before_change),
            GetParam() == XdsProtocol::kDelta ? 3 : 6);
}

TEST_P(ControlPlaneTest, StartsFromTheSavedSnapshotWhenTheControlPlaneIsDown) {
  const std::string version = SaveSnapshot();
  ASSERT_FALSE(version.empty());
  ASSERT_TRUE(LoadSnapshotCache(cache_path()).ok());
  StopServer();

  FakeAgent agent;
  XdsClient client(CachingOptions(), agent.Fn(), nullptr);
  client.Start();
  ASSERT_TRUE(client.WaitFor([](const XdsClientStatus& s) { return s.applies >= 1; }, kWait));
  EXPECT_TRUE(client.status().from_cache);
  EXPECT_EQ(agent.last().version(), version);
  EXPECT_EQ(Services(agent.last()), (std::set<std::string>{"curl.curl", "curl.curl|inbound", "httpbin.httpbin"}));

  // Back: the stream resumes from the saved versions and converges on what changed.
  Delete("Service", "httpbin", "httpbin");
  StartServer();
  ASSERT_TRUE(Eventually([&] { return agent.count() == 2 && InSync(); }));
  EXPECT_FALSE(client.status().from_cache);
  EXPECT_EQ(Services(agent.last()), (std::set<std::string>{"curl.curl", "curl.curl|inbound"}));
}

TEST_P(ControlPlaneTest, TheSavedSnapshotIsNotUsedWhenTheControlPlaneAnswers) {
  ASSERT_FALSE(SaveSnapshot().empty());
  Delete("Service", "httpbin", "httpbin");
  FakeAgent agent;
  XdsClient client(CachingOptions(), agent.Fn(), nullptr);
  client.Start();
  ASSERT_TRUE(Eventually([&] { return agent.count() >= 1 && InSync(); }));
  EXPECT_EQ(agent.count(), 1u);
  EXPECT_FALSE(client.status().from_cache);
  EXPECT_EQ(Services(agent.last()), (std::set<std::string>{"curl.curl", "curl.curl|inbound"}));
}

TEST_P(ControlPlaneTest, ARefusedStreamFallsBackToTheSavedSnapshotAndRetries) {
  ASSERT_FALSE(SaveSnapshot().empty());
  // The saved snapshot belongs to curl/curl-1; an agent of a namespace that does not
  // exist is refused (FAILED_PRECONDITION) and must not take another agent's snapshot.
  {
    FakeAgent agent;
    XdsClientOptions o = CachingOptions();
    o.node = CurlNode("nowhere");
    XdsClient client(o, agent.Fn(), nullptr);
    client.Start();
    ASSERT_TRUE(client.WaitFor([](const XdsClientStatus& s) { return s.disconnects >= 2; }, kWait));
    EXPECT_EQ(agent.count(), 0u);
    EXPECT_NE(client.status().last_stream_error.find("namespace"), std::string::npos)
        << client.status().last_stream_error;
  }
  // Its own snapshot is used when it is refused, and it keeps retrying until accepted.
  Delete("Namespace", "", "curl");
  FakeAgent agent;
  XdsClient client(CachingOptions(), agent.Fn(), nullptr);
  client.Start();
  ASSERT_TRUE(client.WaitFor([](const XdsClientStatus& s) { return s.applies >= 1; }, kWait));
  EXPECT_TRUE(client.status().from_cache);
  Apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: curl}\n");
  ASSERT_TRUE(client.WaitFor([](const XdsClientStatus& s) { return !s.from_cache; }, kWait));
  EXPECT_EQ(agent.count(), 2u);
  // The namespace came back empty: curl's own service went with it.
  EXPECT_EQ(Services(agent.last()), (std::set<std::string>{"httpbin.httpbin"}));
  ASSERT_TRUE(Eventually([&] { return InSync(); }));
}

INSTANTIATE_TEST_SUITE_P(Protocols, ControlPlaneTest, testing::Values(XdsProtocol::kDelta, XdsProtocol::kSotw),
                         [](const testing::TestParamInfo<XdsProtocol>& info) {
                           return info.param == XdsProtocol::kDelta ? "Delta" : "Sotw";
                         });

// ---------------------------------------------------------------------------------------
// A scripted delta server: the test sends responses and reads what the client sent.

class ScriptedAds final : public discovery::AggregatedDiscoveryService::Service {
 public:
  grpc::Status DeltaAggregatedResources(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<discovery::DeltaDiscoveryResponse, discovery::DeltaDiscoveryRequest>* stream) override {
    {
      std::lock_guard lock(mu_);
      stream_ = stream;
    }
    cv_.notify_all();
    discovery::DeltaDiscoveryRequest req;
    while (stream->Read(&req)) {
      std::lock_guard lock(mu_);
      requests_.push_back(req);
      cv_.notify_all();
    }
    std::lock_guard lock(mu_);
    stream_ = nullptr;
    return grpc::Status::OK;
  }

  bool Send(const discovery::DeltaDiscoveryResponse& resp) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, kWait, [&] { return stream_ != nullptr; })) return false;
    return stream_->Write(resp);
  }

  // The first request after `from` that `pred` accepts.
  std::optional<discovery::DeltaDiscoveryRequest> WaitRequest(
      size_t from, const std::function<bool(const discovery::DeltaDiscoveryRequest&)>& pred) {
    std::unique_lock lock(mu_);
    std::optional<discovery::DeltaDiscoveryRequest> found;
    cv_.wait_for(lock, kWait, [&] {
      for (size_t i = from; i < requests_.size(); ++i) {
        if (pred(requests_[i])) {
          found = requests_[i];
          return true;
        }
      }
      return false;
    });
    return found;
  }
  size_t requests() {
    std::lock_guard lock(mu_);
    return requests_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  grpc::ServerReaderWriter<discovery::DeltaDiscoveryResponse, discovery::DeltaDiscoveryRequest>* stream_ = nullptr;
  std::vector<discovery::DeltaDiscoveryRequest> requests_;
};

class ScriptedTest : public testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&ads_);
    server_ = builder.BuildAndStart();
  }
  void TearDown() override { server_->Shutdown(std::chrono::system_clock::now()); }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  template <typename M>
  static discovery::DeltaDiscoveryResponse Response(const std::string& nonce,
                                                    const std::vector<std::pair<std::string, M>>& resources,
                                                    const std::vector<std::string>& removed = {}) {
    discovery::DeltaDiscoveryResponse r;
    r.set_type_url(xds::UrlOf<M>());
    r.set_nonce(nonce);
    r.set_system_version_info("sv-" + nonce);
    for (const auto& [name, msg] : resources) {
      auto* res = r.add_resources();
      res->set_name(name);
      res->set_version("v-" + nonce);
      res->mutable_resource()->PackFrom(msg);
    }
    for (const auto& n : removed) r.add_removed_resources(n);
    return r;
  }

  static std::function<bool(const discovery::DeltaDiscoveryRequest&)> AnswerTo(const std::string& nonce) {
    return [nonce](const discovery::DeltaDiscoveryRequest& r) { return r.response_nonce() == nonce; };
  }

  ScriptedAds ads_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

v1::ChainSet ChainsWithScript(const std::string& script) {
  v1::ChainSet set;
  set.set_name("chains");
  auto* m = set.add_outbound_http();
  m->set_name("audit");
  m->set_priority(115);
  m->set_script(script);
  auto* d = set.add_outbound_http();
  d->set_name("http-default");
  d->set_builtin(true);
  return set;
}

v1::PluginScript Script(const std::string& name) {
  v1::PluginScript s;
  s.set_name(name);
  s.set_plugin("audit");
  s.set_source("function on_request() end");
  return s;
}

TEST_F(ScriptedTest, SubscribesToEveryTypeWithTheNodeFirst) {
  FakeAgent agent;
  XdsClient client(FastOptions(address(), XdsProtocol::kDelta), agent.Fn(), nullptr);
  client.Start();
  ASSERT_TRUE(ads_.WaitRequest(0, [](const auto& r) { return r.type_url() == xds::UrlOf<v1::ChainSet>(); }));
  auto first = ads_.WaitRequest(0, [](const auto&) { return true; });
  EXPECT_EQ(first->node().id(), "curl-1");
  EXPECT_EQ(first->node().metadata().fields().at("namespace").string_value(), "curl");
  EXPECT_EQ(first->node().metadata().fields().at("labels").struct_value().fields().at("app").string_value(), "curl");
  EXPECT_EQ(first->node().metadata().fields().at("inbound_port").number_value(), 15003);
  for (const auto& type : xds_types::TypeUrls()) {
    auto sub = ads_.WaitRequest(0, [&](const auto& r) { return r.type_url() == type; });
    ASSERT_TRUE(sub) << type;
    EXPECT_EQ(sub->resource_names_subscribe_size(), 1);
    EXPECT_EQ(sub->resource_names_subscribe(0), "*");
    EXPECT_TRUE(sub->response_nonce().empty());
  }
}

TEST_F(ScriptedTest, WaitsForReferencedResourcesThenNacksWhatIsMissingAndAcksOnceComplete) {
  FakeAgent agent;
  XdsClientOptions o = FastOptions(address(), XdsProtocol::kDelta);
  o.incomplete_timeout = milliseconds(300);
  XdsClient client(o, agent.Fn(), nullptr);
  client.Start();
  ASSERT_TRUE(ads_.Send(Response<v1::ChainSet>("1", {{"chains", ChainsWithScript("audit@aa")}})));
  auto nack = ads_.WaitRequest(0, AnswerTo("1"));
  ASSERT_TRUE(nack);
  EXPECT_EQ(nack->error_detail().code(), 3);
  EXPECT_NE(nack->error_detail().message().find("PluginScript \"audit@aa\""), std::string::npos)
      << nack->error_detail().message();
  EXPECT_EQ(agent.count(), 0u);

  // The script arrives: the set is complete, applied, and both types are ACKed.
  const size_t seen = ads_.requests();
  ASSERT_TRUE(ads_.Send(Response<v1::PluginScript>("2", {{"audit@aa", Script("audit@aa")}})));
  ASSERT_TRUE(client.WaitFor([](const XdsClientStatus& s) { return s.applies == 1; }, kWait));
  auto ack2 = ads_.WaitRequest(seen, AnswerTo("2"));
  auto ack1 = ads_.WaitRequest(seen, AnswerTo("1"));
  ASSERT_TRUE(ack1 && ack2);
  EXPECT_FALSE(ack1->has_error_detail());
  EXPECT_FALSE(ack2->has_error_detail());
  EXPECT_EQ(agent.last().scripts_size(), 1);
}

TEST_F(ScriptedTest, AMalformedResponseIsRejectedAndNotMerged) {
  FakeAgent agent;
  XdsClient client(FastOptions(address(), XdsProtocol::kDelta), agent.Fn(), nullptr);
  client.Start();
  // A Cluster response holding a Service.
  auto bad = Response<v1::Service>("1", {{"web.shop", v1::Service()}});
  bad.set_type_url(xds::UrlOf<v1::Cluster>());
  ASSERT_TRUE(ads_.Send(bad));
  auto nack = ads_.WaitRequest(0, AnswerTo("1"));
  ASSERT_TRUE(nack);
  EXPECT_NE(nack->error_detail().message().find("holds a resource of type type.googleapis.com/meshplug.v1.Service"),
            std::string::npos)
      << nack->error_detail().message();

  ASSERT_TRUE(ads_.Send(Response<v1::ChainSet>("2", {{"chains", v1::ChainSet()}})));
  auto ack = ads_.WaitRequest(0, AnswerTo("2"));
  ASSERT_TRUE(ack);
  EXPECT_FALSE(ack->has_error_detail());
  EXPECT_EQ(agent.last().clusters_size(), 0);
}

TEST_F(ScriptedTest, ResponsesOfOnePushAreAppliedAsOneUpdate) {
  FakeAgent agent;
  XdsClient client(FastOptions(address(), XdsProtocol::kDelta), agent.Fn(), nullptr);
  client.Start();
  ASSERT_TRUE(ads_.Send(Response<v1::PluginScript>("1", {{"audit@aa", Script("audit@aa")}})));
  ASSERT_TRUE(ads_.Send(Response<v1::ChainSet>("2", {{"chains", ChainsWithScript("audit@aa")}})));
  ASSERT_TRUE(ads_.WaitRequest(0, AnswerTo("2")));
  EXPECT_EQ(agent.count(), 1u);

  // A removal: the script goes with the chain that used it.
  ASSERT_TRUE(ads_.Send(Response<v1::ChainSet>("3", {{"chains", v1::ChainSet()}})));
  ASSERT_TRUE(ads_.Send(Response<v1::PluginScript>("4", {}, {"audit@aa"})));
  ASSERT_TRUE(ads_.WaitRequest(0, AnswerTo("4")));
  EXPECT_EQ(agent.count(), 2u);
  EXPECT_EQ(agent.last().scripts_size(), 0);
}

TEST_F(ScriptedTest, ANewClusterWaitsForItsEndpointsOnlyOnce) {
  FakeAgent agent;
  XdsClientOptions o = FastOptions(address(), XdsProtocol::kDelta);
  o.endpoints_warming = milliseconds(2000);
  XdsClient client(o, agent.Fn(), nullptr);
  client.Start();
  v1::Service web;
  web.set_name("web.shop");
  web.add_hosts("web.shop");
  web.add_routes()->add_clusters()->set_cluster("web.shop|80");
  v1::Cluster cluster;
  cluster.set_name("web.shop|80");
  ASSERT_TRUE(ads_.Send(Response<v1::Cluster>("1", {{"web.shop|80", cluster}})));
  ASSERT_TRUE(ads_.Send(Response<v1::Service>("2", {{"web.shop", web}})));
  ASSERT_TRUE(ads_.Send(Response<v1::ChainSet>("3", {{"chains", v1::ChainSet()}})));
  // No Endpoints come: after the warming time the cluster runs empty.
  ASSERT_TRUE(ads_.WaitRequest(0, AnswerTo("3")));
  EXPECT_EQ(agent.count(), 1u);
  EXPECT_EQ(agent.last().clusters_size(), 1);
  EXPECT_EQ(agent.last().endpoints_size(), 0);
  EXPECT_GE(client.status().last_update_latency, milliseconds(2000));

  // Known empty now: the next update does not wait for it again.
  web.add_hosts("web");
  ASSERT_TRUE(ads_.Send(Response<v1::Service>("4", {{"web.shop", web}})));
  ASSERT_TRUE(ads_.WaitRequest(0, AnswerTo("4")));
  EXPECT_EQ(agent.count(), 2u);
  EXPECT_LT(client.status().last_update_latency, milliseconds(2000));
}

TEST(BackoffTest, GrowsExponentiallyWithJitterAndIsBounded) {
  const milliseconds base(100), max(10000);
  EXPECT_EQ(BackoffDelay(0, base, max, 0.0), milliseconds(50));
  EXPECT_EQ(BackoffDelay(0, base, max, 1.0), milliseconds(100));
  EXPECT_EQ(BackoffDelay(3, base, max, 1.0), milliseconds(800));
  EXPECT_EQ(BackoffDelay(3, base, max, 0.0), milliseconds(400));
  for (int attempt : {7, 8, 20, 62, 1000}) {
    EXPECT_LE(BackoffDelay(attempt, base, max, 1.0), max);
    EXPECT_GE(BackoffDelay(attempt, base, max, 0.0), max / 2);
  }
}

}  // namespace
}  // namespace meshplug::agent::xds
