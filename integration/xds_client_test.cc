// The agent's xDS client against the real ADS server: store, controller, translation and
// snapshot cache in process, over real gRPC on 127.0.0.1, both protocols.
#include "agent/xds/xds_client.h"

#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <thread>

#include "agent/xds/bootstrap.h"
#include "agent/xds/saved_config.h"
#include "agent/xds/test_client.h"
#include "common/config_dump.h"
#include "common/eventually.h"
#include "common/log.h"
#include "control_plane/api/resource_api.h"
#include "control_plane/controller/mesh_controller.h"
#include "control_plane/store/sqlite_store.h"
#include "control_plane/testing/admin_requests.h"
#include "control_plane/testing/mesh_fixtures.h"
#include "control_plane/testing/trusting_node_authorizer.h"
#include "control_plane/xds/ads_service.h"
#include "control_plane/xds/resources.h"

namespace meshplug::agent::xds {
namespace {

namespace cp = ::meshplug::control_plane::xds;  // the control plane's
namespace api = ::meshplug::control_plane::api;
namespace controller = ::meshplug::control_plane::controller;
namespace store = ::meshplug::control_plane::store;
using namespace testing_client;
using std::chrono::milliseconds;
constexpr milliseconds kWait(10000);

const std::string kMesh =
    std::string(control_plane::testing::kCurlHttpbinMesh) + "---\n" + control_plane::testing::kPluginPolicyOn;

const std::string kBrokenPlugin =
    control_plane::testing::PluginYaml("broken", 115, "function on_request(req, ctx) end") + "---\n" +
    control_plane::testing::PluginChainYaml("curl", "broken-chain", "outbound-http", "broken",
                                            control_plane::testing::AppSelector("curl"));

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

// The control plane in process; its gRPC server can be stopped and restarted on the same
// port while the store, controller, cache and registry live on.
class ControlPlaneTest : public ::testing::TestWithParam<XdsProtocol> {
 protected:
  void SetUp() override {
    if (std::getenv("XDS_TEST_DEBUG")) log::SetLevel(log::Level::kDebug);
    dir_ = TestDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : name) c = c == '/' ? '_' : c;
    store_ = std::move(*store::SqliteStore::Open(dir_ + "/store.db"));
    api_ = std::make_unique<api::ResourceApi>(*store_);
    Apply(kMesh);
    controller_ = std::make_unique<controller::MeshController>(
        *store_, cache_, registry_, controller::Options{.quiet = milliseconds(5), .max_delay = milliseconds(50), .grace = milliseconds(30000)});
    ASSERT_TRUE(controller_->Start().ok());
    ads_ = std::make_unique<cp::AdsService>(cache_, registry_, *controller_, authorizer_);
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
    const v1::ApplyRequest req = control_plane::testing::ApplyRequestFor(yaml);
    auto r = api_->Apply(req);
    ASSERT_TRUE(r.ok()) << r.status();
    if (controller_) {
      ASSERT_TRUE(controller_->WaitForRevision(r->revision(), kWait));
    }
  }

  void Delete(const std::string& kind, const std::string& ns, const std::string& name) {
    auto r = api_->Delete(control_plane::testing::DeleteRequestFor(kind, ns, name));
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
  control_plane::testing::TrustingNodeAuthorizer authorizer_;
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
  ASSERT_TRUE(LoadSavedConfig(cache_path()).ok());
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
  // Over SotW the types arrive one by one: the first may confirm the saved snapshot (and
  // end from_cache) before the one that changed is applied, so wait for the new snapshot.
  ASSERT_TRUE(client.WaitFor([](const XdsClientStatus& s) { return !s.from_cache; }, kWait));
  ASSERT_TRUE(Eventually([&] { return agent.count() >= 2; }));
  EXPECT_EQ(agent.count(), 2u);
  // The namespace came back empty: curl's own service went with it.
  EXPECT_EQ(Services(agent.last()), (std::set<std::string>{"httpbin.httpbin"}));
  ASSERT_TRUE(Eventually([&] { return InSync(); }));
}

INSTANTIATE_TEST_SUITE_P(Protocols, ControlPlaneTest, ::testing::Values(XdsProtocol::kDelta, XdsProtocol::kSotw),
                         [](const ::testing::TestParamInfo<XdsProtocol>& info) {
                           return info.param == XdsProtocol::kDelta ? "Delta" : "Sotw";
                         });

}  // namespace
}  // namespace meshplug::agent::xds
