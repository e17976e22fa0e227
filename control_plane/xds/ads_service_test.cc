// The ADS server driven by scripted clients over real gRPC streams, with the real store,
// controller and translation behind it.
#include "control_plane/xds/ads_service.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include "common/eventually.h"
#include "common/log.h"
#include "common/xds_types.h"
#include "control_plane/api/resource_api.h"
#include "control_plane/controller/mesh_controller.h"
#include "control_plane/store/sqlite_store.h"
#include "control_plane/testing/admin_requests.h"
#include "control_plane/testing/mesh_fixtures.h"
#include "control_plane/testing/trusting_node_authorizer.h"
#include "meshplug/v1/snapshot.pb.h"
#include "control_plane/testing/fresh_store.h"

namespace meshplug::control_plane::xds {
namespace {

namespace discovery = envoy::service::discovery::v3;
using std::chrono::milliseconds;

const std::string kMesh = std::string(testing::kCurlHttpbinMesh) + "---\n" + testing::kPluginPolicyOn + "---\n" +
                          testing::PluginYaml("token-injector", 115, "function on_request(req, ctx) end") + "---\n" +
                          testing::PluginChainYaml("curl", "injector-chain", "outbound-http", "token-injector",
                                                   testing::AppSelector("curl"));


const std::string kChainSet = xds_types::UrlOf<v1::ChainSet>();
const std::string kService = xds_types::UrlOf<v1::Service>();
const std::string kCluster = xds_types::UrlOf<v1::Cluster>();

envoy::config::core::v3::Node NodeFor(const std::string& name, const std::string& ns, const std::string& app) {
  envoy::config::core::v3::Node node;
  node.set_id(name);
  auto& md = *node.mutable_metadata()->mutable_fields();
  md["namespace"].set_string_value(ns);
  (*md["labels"].mutable_struct_value()->mutable_fields())["app"].set_string_value(app);
  md["address"].set_string_value("127.0.0.2");
  md["inbound_port"].set_number_value(15003);
  md["service_account"].set_string_value(app);
  return node;
}

class AdsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = testing::FreshSqliteStore(::testing::UnitTest::GetInstance()->current_test_info()->name());
    api_ = std::make_unique<api::ResourceApi>(*store_);
    Apply(kMesh);
    controller_ = std::make_unique<controller::MeshController>(
        *store_, cache_, registry_, controller::Options{.quiet = milliseconds(5), .max_delay = milliseconds(50), .grace = milliseconds(200)});
    ASSERT_TRUE(controller_->Start().ok());
    ads_ = std::make_unique<AdsService>(cache_, registry_, *controller_, authorizer_);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(ads_.get());
    server_ = builder.BuildAndStart();
    address_ = "127.0.0.1:" + std::to_string(port);
    channel_ = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  }

  void TearDown() override {
    server_->Shutdown(std::chrono::system_clock::now());
    controller_->Stop();
  }

  int64_t Apply(const std::string& yaml) {
    const v1::ApplyRequest req = testing::ApplyRequestFor(yaml);
    auto r = api_->Apply(req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->revision() : 0;
  }

  int64_t Delete(const std::string& kind, const std::string& ns, const std::string& name) {
    auto r = api_->Delete(testing::DeleteRequestFor(kind, ns, name));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->revision() : 0;
  }

  const v1::TypeStatus* Status(const std::string& agent, const std::string& type) {
    for (const auto& a : registry_.List()) {
      if (a.agent() != agent) continue;
      for (const auto& t : a.types()) {
        if (t.type_url() == type) {
          status_copy_ = t;
          return &status_copy_;
        }
      }
    }
    return nullptr;
  }

  std::unique_ptr<store::SqliteStore> store_;
  std::unique_ptr<api::ResourceApi> api_;
  SnapshotCache cache_;
  AgentRegistry registry_;
  std::unique_ptr<controller::MeshController> controller_;
  control_plane::testing::TrustingNodeAuthorizer authorizer_;
  std::unique_ptr<AdsService> ads_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  v1::TypeStatus status_copy_;
};

// A scripted stream of one protocol; every read has the context's deadline.
template <typename Req, typename Resp>
class Client {
 public:
  template <typename Open>
  explicit Client(Open open) {
    ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    stream_ = open(&ctx_);
  }
  ~Client() {
    ctx_.TryCancel();
    stream_->Finish();
  }
  void Send(const Req& req) { ASSERT_TRUE(stream_->Write(req)); }
  Resp Read() {
    Resp resp;
    EXPECT_TRUE(stream_->Read(&resp)) << "no response";
    return resp;
  }
  void Close() {
    stream_->WritesDone();
  }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<Req, Resp>> stream_;
};

using Sotw = Client<discovery::DiscoveryRequest, discovery::DiscoveryResponse>;
using Delta = Client<discovery::DeltaDiscoveryRequest, discovery::DeltaDiscoveryResponse>;

std::unique_ptr<Sotw> OpenSotw(std::shared_ptr<grpc::Channel> ch) {
  auto stub = discovery::AggregatedDiscoveryService::NewStub(ch);
  return std::make_unique<Sotw>([&](grpc::ClientContext* c) { return stub->StreamAggregatedResources(c); });
}

std::unique_ptr<Delta> OpenDelta(std::shared_ptr<grpc::Channel> ch) {
  auto stub = discovery::AggregatedDiscoveryService::NewStub(ch);
  return std::make_unique<Delta>([&](grpc::ClientContext* c) { return stub->DeltaAggregatedResources(c); });
}

discovery::DiscoveryRequest SotwReq(const std::string& type, const std::string& version, const std::string& nonce,
                                    std::vector<std::string> names = {}) {
  discovery::DiscoveryRequest r;
  r.set_type_url(type);
  r.set_version_info(version);
  r.set_response_nonce(nonce);
  for (auto& n : names) r.add_resource_names(n);
  return r;
}

std::vector<std::string> ChainNames(const discovery::DiscoveryResponse& resp) {
  v1::ChainSet set;
  EXPECT_EQ(resp.resources_size(), 1);
  resp.resources(0).UnpackTo(&set);
  std::vector<std::string> out;
  for (const auto& m : set.outbound_http()) out.push_back(m.name());
  return out;
}

std::set<std::string> ServiceNames(const discovery::DiscoveryResponse& resp) {
  std::set<std::string> out;
  for (const auto& any : resp.resources()) {
    v1::Service s;
    any.UnpackTo(&s);
    out.insert(s.name() + (s.inbound() ? "|inbound" : ""));
  }
  return out;
}

TEST_F(AdsTest, SotwInitialResponseAckUpdateAndNackKeepsTheOldVersion) {
  auto c = OpenSotw(channel_);
  auto first = SotwReq(kChainSet, "", "");
  *first.mutable_node() = NodeFor("curl-1", "curl", "curl");
  c->Send(first);
  auto r1 = c->Read();
  EXPECT_EQ(r1.type_url(), kChainSet);
  EXPECT_FALSE(r1.version_info().empty());
  EXPECT_EQ(ChainNames(r1)[5], "token-injector");
  c->Send(SotwReq(kChainSet, r1.version_info(), r1.nonce()));  // ACK
  ASSERT_TRUE(controller_->WaitForRevision(store_->Revision(), milliseconds(5000)));

  // A new plugin for curl's chain: a new version arrives.
  Apply(testing::PluginYaml("audit", 125) + "---\n" +
        testing::PluginChainYaml("curl", "audit-chain", "outbound-http", "audit"));
  auto r2 = c->Read();
  EXPECT_NE(r2.version_info(), r1.version_info());
  EXPECT_EQ(ChainNames(r2)[4], "audit");
  ASSERT_NE(Status("curl/curl-1", kChainSet), nullptr);
  EXPECT_EQ(Status("curl/curl-1", kChainSet)->acked_version(), r1.version_info());

  // NACK: the agent stays on r1; the status records the message; nothing is resent.
  auto nack = SotwReq(kChainSet, r1.version_info(), r2.nonce());
  nack.mutable_error_detail()->set_code(3);
  nack.mutable_error_detail()->set_message("audit: attempt to call a nil value");
  c->Send(nack);
  ASSERT_TRUE(Eventually([&] { auto* s = Status("curl/curl-1", kChainSet); return s && !s->nack_message().empty(); }));
  EXPECT_EQ(Status("curl/curl-1", kChainSet)->acked_version(), r1.version_info());
  EXPECT_EQ(Status("curl/curl-1", kChainSet)->nack_message(), "audit: attempt to call a nil value");
  bool found = false;
  for (const auto& a : registry_.List()) {
    if (a.agent() == "curl/curl-1") found = a.last_nack() == "ChainSet: audit: attempt to call a nil value";
  }
  EXPECT_TRUE(found);

  // A NACK's text is kept bounded however long the agent made it.
  auto big = SotwReq(kChainSet, r1.version_info(), r2.nonce());
  big.mutable_error_detail()->set_code(3);
  big.mutable_error_detail()->set_message(std::string(1 << 20, 'e'));
  c->Send(big);
  ASSERT_TRUE(Eventually([&] { return Status("curl/curl-1", kChainSet)->nack_message().size() > 100; }));
  EXPECT_EQ(Status("curl/curl-1", kChainSet)->nack_message(),
            std::string(AgentRegistry::kMaxNackBytes, 'e') + "... (" +
                std::to_string((1 << 20) - AgentRegistry::kMaxNackBytes) + " more bytes)");

  // The next response is for the next change, not a resend of the rejected version.
  Delete("Plugin", "", "audit");
  auto r3 = c->Read();
  EXPECT_EQ(r3.version_info(), r1.version_info());  // back to the same content
  EXPECT_EQ(std::stoi(r3.nonce()), std::stoi(r2.nonce()) + 1);
}

TEST_F(AdsTest, SotwStaleNonceIsIgnoredAndSubscriptionsDecideTheResources) {
  auto c = OpenSotw(channel_);
  auto first = SotwReq(kService, "", "", {"httpbin.httpbin"});
  *first.mutable_node() = NodeFor("curl-1", "curl", "curl");
  c->Send(first);
  auto r1 = c->Read();
  EXPECT_EQ(ServiceNames(r1), std::set<std::string>{"httpbin.httpbin"});
  c->Send(SotwReq(kService, r1.version_info(), r1.nonce(), {"httpbin.httpbin"}));  // ACK

  // Widen to everything: the full set comes.
  c->Send(SotwReq(kService, r1.version_info(), r1.nonce(), {"*"}));
  auto r2 = c->Read();
  EXPECT_EQ(ServiceNames(r2), (std::set<std::string>{"httpbin.httpbin", "curl.curl", "curl.curl|inbound"}));

  // A request carrying the older nonce is stale: no response for it.
  c->Send(SotwReq(kService, r1.version_info(), r1.nonce(), {"curl.curl"}));
  c->Send(SotwReq(kService, r2.version_info(), r2.nonce(), {"curl.curl|inbound"}));
  auto r3 = c->Read();
  EXPECT_EQ(ServiceNames(r3), std::set<std::string>{"curl.curl|inbound"});
  EXPECT_EQ(Status("curl/curl-1", kService)->responses(), 3);

  // Removal: in state of the world, the service is absent from the next response.
  c->Send(SotwReq(kService, r3.version_info(), r3.nonce(), {"*"}));
  auto r4 = c->Read();
  EXPECT_TRUE(ServiceNames(r4).count("httpbin.httpbin"));
  c->Send(SotwReq(kService, r4.version_info(), r4.nonce(), {"*"}));
  Delete("Service", "httpbin", "httpbin");
  auto r5 = c->Read();
  EXPECT_EQ(ServiceNames(r5), (std::set<std::string>{"curl.curl", "curl.curl|inbound"}));
}

TEST_F(AdsTest, StreamWithoutANamespaceOrWithABadNodeIsRefused) {
  discovery::DiscoveryResponse resp;
  auto stub = discovery::AggregatedDiscoveryService::NewStub(channel_);
  grpc::ClientContext ctx;
  auto s = stub->StreamAggregatedResources(&ctx);
  auto req = SotwReq(kChainSet, "", "");
  *req.mutable_node() = NodeFor("x-1", "nowhere", "x");
  s->Write(req);
  EXPECT_FALSE(s->Read(&resp));
  auto st = s->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(st.error_message(), "namespace \"nowhere\" does not exist; create it first (meshctl namespace add nowhere)");

  grpc::ClientContext ctx2;
  auto s2 = stub->StreamAggregatedResources(&ctx2);
  auto bad = SotwReq(kChainSet, "", "");
  bad.mutable_node()->set_id("y");
  s2->Write(bad);
  EXPECT_FALSE(s2->Read(&resp));
  EXPECT_EQ(s2->Finish().error_message(), "node.metadata.namespace: required");
}

discovery::DeltaDiscoveryRequest DeltaReq(const std::string& type, std::vector<std::string> subscribe = {},
                                          std::vector<std::string> unsubscribe = {}, const std::string& nonce = "") {
  discovery::DeltaDiscoveryRequest r;
  r.set_type_url(type);
  for (auto& n : subscribe) r.add_resource_names_subscribe(n);
  for (auto& n : unsubscribe) r.add_resource_names_unsubscribe(n);
  r.set_response_nonce(nonce);
  return r;
}

std::map<std::string, std::string> Versions(const discovery::DeltaDiscoveryResponse& resp) {
  std::map<std::string, std::string> out;
  for (const auto& r : resp.resources()) out[r.name()] = r.version();
  return out;
}

// Bytes that are no discovery request, on either method: the stream ends, naming what the
// server expected, and the server goes on serving.
TEST_F(AdsTest, ARequestThatDoesNotParseEndsItsStreamNamingTheType) {
  for (const std::string protocol : {"Stream", "Delta"}) {
    grpc::GenericStub stub(channel_);
    grpc::CompletionQueue cq;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto call = stub.PrepareCall(&ctx, "/envoy.service.discovery.v3.AggregatedDiscoveryService/" + protocol +
                                           "AggregatedResources", &cq);
    auto step = [&] {
      void* tag;
      bool ok = false;
      EXPECT_TRUE(cq.Next(&tag, &ok));
      return ok;
    };
    call->StartCall(nullptr);
    EXPECT_TRUE(step());  // EXPECT: the queue is drained below whatever happens
    const std::string junk = "\xff\xff\xff\xff";
    grpc::Slice slice(junk.data(), junk.size());
    call->Write(grpc::ByteBuffer(&slice, 1), nullptr);
    step();  // may fail once the server has ended the stream
    grpc::Status st;
    call->Finish(&st, nullptr);
    step();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << protocol;
    EXPECT_EQ(st.error_message(), "the request does not parse as envoy.service.discovery.v3." +
                                      std::string(protocol == "Delta" ? "DeltaDiscoveryRequest" : "DiscoveryRequest"));
    cq.Shutdown();
    void* tag;
    bool ok;
    while (cq.Next(&tag, &ok)) {
    }
  }
  auto c = OpenDelta(channel_);
  auto first = DeltaReq(kChainSet);
  *first.mutable_node() = NodeFor("curl-1", "curl", "curl");
  c->Send(first);
  EXPECT_EQ(c->Read().type_url(), kChainSet);
}

// An agent that does not say it tells scripts apart by their source would keep running a
// script the control plane replaces in place: the control plane says so in its log.
TEST_F(AdsTest, AnAgentBuiltBeforeScriptsWereReplacedInPlaceIsLogged) {
  log::SetRepeatLimit(1000, std::chrono::seconds(10));  // the other tests' agents log it too
  const std::string warning = "agent built before scripts were replaced in place";
  // The warning's line, or "".
  auto warned = [&](const std::string& log) {
    const size_t at = log.find(warning);
    return at == std::string::npos ? std::string() : log.substr(at, log.find('\n', at) - at);
  };
  for (const bool declares : {false, true}) {
    SCOPED_TRACE(declares ? "declares it" : "an older agent");
    const std::string name = declares ? "curl-new" : "curl-old";
    ::testing::internal::CaptureStderr();
    auto c = OpenDelta(channel_);
    auto first = DeltaReq(kChainSet);
    *first.mutable_node() = NodeFor(name, "curl", "curl");
    first.mutable_node()->set_user_agent_name(xds_types::kAgentUserAgentName);
    if (declares) first.mutable_node()->add_client_features(xds_types::kScriptsByContentFeature);
    c->Send(first);
    EXPECT_EQ(c->Read().type_url(), kChainSet);
    const std::string line = warned(::testing::internal::GetCapturedStderr());
    if (declares) {
      EXPECT_EQ(line, "");
    } else {
      EXPECT_NE(line.find("\"agent\":\"curl/curl-old\""), std::string::npos) << line;
    }
  }
}

TEST_F(AdsTest, DeltaSendsChangesRemovalsAndHonoursSubscriptions) {
  auto c = OpenDelta(channel_);
  auto first = DeltaReq(kService, {"*"});
  *first.mutable_node() = NodeFor("curl-1", "curl", "curl");
  c->Send(first);
  auto r1 = c->Read();
  EXPECT_EQ(Versions(r1).size(), 3u);
  c->Send(DeltaReq(kService, {}, {}, r1.nonce()));  // ACK

  // Explicit subscriptions to clusters: one that exists, one that does not.
  c->Send(DeltaReq(kCluster, {"httpbin.httpbin|14001", "nope|1"}));
  auto r2 = c->Read();
  EXPECT_EQ(r2.type_url(), kCluster);
  EXPECT_EQ(Versions(r2).size(), 1u);
  EXPECT_TRUE(Versions(r2).count("httpbin.httpbin|14001"));
  ASSERT_EQ(r2.removed_resources_size(), 1);
  EXPECT_EQ(r2.removed_resources(0), "nope|1");
  c->Send(DeltaReq(kCluster, {}, {}, r2.nonce()));

  // Unsubscribing needs no response; the next one is about the next change.
  c->Send(DeltaReq(kCluster, {}, {"httpbin.httpbin|14001"}));
  Delete("Service", "httpbin", "httpbin");
  auto r3 = c->Read();
  EXPECT_EQ(r3.type_url(), kService);
  EXPECT_TRUE(r3.resources().empty());
  ASSERT_EQ(r3.removed_resources_size(), 1);
  EXPECT_EQ(r3.removed_resources(0), "httpbin.httpbin");
}

TEST_F(AdsTest, DeltaReconnectWithInitialVersionsGetsOnlyWhatChanged) {
  std::map<std::string, std::string> have;
  {
    auto c = OpenDelta(channel_);
    auto first = DeltaReq(kService, {"*"});
    *first.mutable_node() = NodeFor("curl-1", "curl", "curl");
    c->Send(first);
    have = Versions(c->Read());
    ASSERT_EQ(have.size(), 3u);
  }
  ASSERT_TRUE(Eventually([&] { return !registry_.IsConnected("curl/curl-1"); }));
  Apply(R"(
apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: httpbin}
spec: {ports: [{port: 14002}], selector: {app: httpbin}}
)");
  ASSERT_TRUE(controller_->WaitForRevision(store_->Revision(), milliseconds(5000)));
  auto c = OpenDelta(channel_);
  auto again = DeltaReq(kService, {"*"});
  *again.mutable_node() = NodeFor("curl-1", "curl", "curl");
  again.mutable_initial_resource_versions()->insert(have.begin(), have.end());
  c->Send(again);
  auto r = c->Read();
  ASSERT_EQ(Versions(r).size(), 1u);
  EXPECT_TRUE(Versions(r).count("httpbin.httpbin"));
  EXPECT_NE(Versions(r).at("httpbin.httpbin"), have.at("httpbin.httpbin"));
}

// An agent that stops reading holds up no one: the others get each change at once, the
// stuck stream holds the response being written, at most one more, and what gRPC's
// buffer holds of hinted ones (under 64 KB), and when it reads again it gets
// the latest state in a few responses, not one per change in between.
TEST_F(AdsTest, AnAgentThatStopsReadingDelaysNoOneAndThenGetsOnlyTheLatest) {
  // Its own connection, with flow-control windows that stay small (64 KiB).
  grpc::ChannelArguments small;
  small.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  small.SetInt("meshplug.test.own_connection", 1);
  auto stuck = OpenDelta(grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), small));
  auto first = DeltaReq(kService, {"*"});
  *first.mutable_node() = NodeFor("stuck-1", "curl", "curl");
  stuck->Send(first);  // and reads nothing until the end

  auto live = OpenDelta(channel_);
  auto hello = DeltaReq(kService, {"*"});
  *hello.mutable_node() = NodeFor("live-1", "httpbin", "httpbin");
  live->Send(hello);
  auto r = live->Read();
  live->Send(DeltaReq(kService, {}, {}, r.nonce()));

  // Each change adds Services of 200 ports each: about a megabyte per response, many times
  // what the stuck connection's windows take.
  std::string ports;
  for (int p = 1; p <= 200; ++p) ports += (p > 1 ? ", " : "") + std::string("{port: ") + std::to_string(p) + "}";
  constexpr int kChanges = 8;
  for (int change = 0; change < kChanges; ++change) {
    std::string yaml;
    for (int i = 0; i < 10; ++i) {
      yaml += "---\napiVersion: v1\nkind: Service\nmetadata: {name: big-" + std::to_string(change) + "-" + std::to_string(i) +
              ", namespace: httpbin}\nspec: {ports: [" + ports + "], selector: {app: nobody}}\n";
    }
    Apply(yaml);
    // The live agent gets this change's Services (a context deadline bounds every read).
    std::set<std::string> added;
    while (added.size() < 10) {
      auto update = live->Read();
      if (update.type_url() == kService) {
        for (const auto& [name, _] : Versions(update)) {
          if (name.rfind("big-" + std::to_string(change) + "-", 0) == 0) added.insert(name);
        }
      }
      live->Send(DeltaReq(update.type_url(), {}, {}, update.nonce()));
    }
  }
  // The stuck agent reads at last: every Service, in fewer responses than there were changes.
  std::set<std::string> seen;
  int responses = 0;
  while (seen.size() < 10 * kChanges) {
    auto update = stuck->Read();
    if (update.type_url() != kService) continue;
    ++responses;
    for (const auto& [name, _] : Versions(update)) {
      if (name.rfind("big-", 0) == 0) seen.insert(name);
    }
    stuck->Send(DeltaReq(kService, {}, {}, update.nonce()));
    ASSERT_LT(responses, 10 * kChanges) << "no end to the responses";
  }
  EXPECT_LT(responses, kChanges) << "the stuck stream was sent every change in between";
}

// Agents that vanish while responses are being written must not keep the server from
// shutting down (a finish deferred behind an in-flight write used to be lost).
TEST_F(AdsTest, StreamsCancelledMidWriteStillEndAndTheServerShutsDown) {
  auto stub = discovery::AggregatedDiscoveryService::NewStub(channel_);
  for (int i = 0; i < 20; ++i) {
    grpc::ClientContext ctx;
    auto stream = stub->DeltaAggregatedResources(&ctx);
    bool first = true;
    for (const auto& type : xds_types::TypeUrls()) {
      auto req = DeltaReq(type, {"*"});
      if (first) *req.mutable_node() = NodeFor("curl-1", "curl", "curl");
      first = false;
      stream->Write(req);
    }
    discovery::DeltaDiscoveryResponse resp;
    stream->Read(&resp);  // the server is now writing the rest
    ctx.TryCancel();
    stream->Finish();
  }
  std::atomic<bool> done{false};
  std::thread shutdown([&] {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    done = true;
  });
  const bool ended = Eventually([&] { return done.load(); }, milliseconds(20000));
  if (!ended) {
    ADD_FAILURE() << "server shutdown is stuck behind a stream that never finished";
    std::abort();  // the stuck thread cannot be joined
  }
  shutdown.join();
}

// Reads and ACKs every response of a delta stream subscribed to all types, counting them.
class DeltaAgent {
 public:
  DeltaAgent(std::shared_ptr<grpc::Channel> ch, const std::string& name, const std::string& ns, const std::string& app)
      : stub_(discovery::AggregatedDiscoveryService::NewStub(ch)) {
    ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    stream_ = stub_->DeltaAggregatedResources(&ctx_);
    bool first = true;
    for (const auto& type : xds_types::TypeUrls()) {
      auto req = DeltaReq(type, {"*"});
      if (first) *req.mutable_node() = NodeFor(name, ns, app);
      first = false;
      stream_->Write(req);
    }
    reader_ = std::thread([this] {
      discovery::DeltaDiscoveryResponse resp;
      while (stream_->Read(&resp)) {
        {
          std::lock_guard lock(mu_);
          types_.push_back(resp.type_url());
        }
        stream_->Write(DeltaReq(resp.type_url(), {}, {}, resp.nonce()));
      }
    });
  }
  ~DeltaAgent() {
    ctx_.TryCancel();
    reader_.join();
  }
  std::vector<std::string> Types() {
    std::lock_guard lock(mu_);
    return types_;
  }

 private:
  std::unique_ptr<discovery::AggregatedDiscoveryService::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<discovery::DeltaDiscoveryRequest, discovery::DeltaDiscoveryResponse>> stream_;
  std::thread reader_;
  std::mutex mu_;
  std::vector<std::string> types_;
};

// The agent has its whole snapshot: the chain set comes last.
bool HasChains(DeltaAgent& agent) {
  const auto t = agent.Types();
  return std::find(t.begin(), t.end(), kChainSet) != t.end();
}

// Waits until the agent has received nothing new for 200 ms (registration changed
// endpoints for everyone); false if responses kept coming for 10 s.
bool Settle(DeltaAgent& agent) {
  size_t n = 0;
  return Eventually([&] { size_t now = agent.Types().size(); bool same = now == n; n = now; return same; },
                    milliseconds(10000), milliseconds(200));
}

TEST_F(AdsTest, APluginConfigReachesOnlyTheAgentsThatMountItsPlugin) {
  DeltaAgent curl(channel_, "curl-1", "curl", "curl");
  DeltaAgent httpbin(channel_, "httpbin-1", "httpbin", "httpbin");
  ASSERT_TRUE(Eventually([&] { return HasChains(curl) && HasChains(httpbin); }));
  ASSERT_TRUE(controller_->WaitForRevision(store_->Revision(), milliseconds(5000)));
  ASSERT_TRUE(Settle(curl));
  ASSERT_TRUE(Settle(httpbin));
  const size_t curl_before = curl.Types().size();
  const size_t httpbin_before = httpbin.Types().size();
  const int64_t curl_translations = controller_->Translations("curl/curl-1");
  const int64_t httpbin_translations = controller_->Translations("httpbin/httpbin-1");

  Apply(R"(
apiVersion: plugin.flomesh.io/v1alpha1
kind: PluginConfig
metadata: {name: injector-config, namespace: curl}
spec:
  plugin: token-injector
  destinationRefs: [{kind: Service, name: httpbin, namespace: httpbin}]
  config: {AccessToken: 2f1acc6c3a606b082e5eef5e54414ffb}
)");
  ASSERT_TRUE(controller_->WaitForRevision(store_->Revision(), milliseconds(5000)));
  // A change both agents see, as a marker: whatever the PluginConfig caused came before it.
  Apply("apiVersion: v1\nkind: Service\nmetadata: {name: marker, namespace: curl}\nspec: {ports: [{port: 81}]}\n");
  ASSERT_TRUE(Eventually([&] { return httpbin.Types().size() > httpbin_before && curl.Types().size() > curl_before + 1; }));

  const auto curl_types = curl.Types();
  const auto httpbin_types = httpbin.Types();
  // curl: the Service with the new config, then the marker's resources.
  EXPECT_EQ(curl_types[curl_before], kService);
  // httpbin: nothing for the PluginConfig; only the marker's resources.
  for (size_t i = httpbin_before; i < httpbin_types.size(); ++i) {
    EXPECT_NE(httpbin_types[i], kChainSet);
  }
  // The controller re-translated only curl for the PluginConfig, and neither for the
  // marker (a Service that selects neither and no PluginConfig names: it comes with the
  // destinations).
  EXPECT_EQ(controller_->Translations("curl/curl-1"), curl_translations + 1);
  EXPECT_EQ(controller_->Translations("httpbin/httpbin-1"), httpbin_translations);
}

// A new Service changes three types of an agent's resources, and all three responses
// reach it: the control plane sends the first two with the gRPC buffer hint, and the
// last must go without it (with it, the test times out waiting for that response).
TEST_F(AdsTest, ANewServiceReachesTheAgentAsEveryTypeItChanges) {
  DeltaAgent curl(channel_, "curl-1", "curl", "curl");
  ASSERT_TRUE(Eventually([&] { return HasChains(curl); }));
  ASSERT_TRUE(controller_->WaitForRevision(store_->Revision(), milliseconds(5000)));
  ASSERT_TRUE(Settle(curl));
  const size_t before = curl.Types().size();

  Apply("apiVersion: v1\nkind: Service\nmetadata: {name: extra, namespace: curl}\n"
        "spec: {ports: [{port: 81}], selector: {app: curl}}\n");
  const std::set<std::string> changed = {kService, kCluster, xds_types::UrlOf<v1::Endpoints>()};
  const auto after = [&] {
    const auto t = curl.Types();
    return std::set<std::string>(t.begin() + static_cast<std::ptrdiff_t>(before), t.end());
  };
  // A late response of the registration may come too; these three must.
  EXPECT_TRUE(Eventually([&] {
    const auto got = after();
    return std::includes(got.begin(), got.end(), changed.begin(), changed.end());
  })) << after().size() << " types after the change";
}

}  // namespace
}  // namespace meshplug::control_plane::xds
