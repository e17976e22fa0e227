// The xDS client against a scripted ADS server over real gRPC on 127.0.0.1: what it
// subscribes to, and what the real control plane never sends (incomplete updates,
// malformed resources). integration/xds_client_test.cc runs it against the real one.
#include "agent/xds/xds_client.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "agent/xds/test_client.h"
#include "common/x509.h"
#include "net/tls.h"
#include "envoy/service/discovery/v3/ads.grpc.pb.h"
#include "agent/xds/test_resources.h"


namespace meshplug::agent::xds {
namespace {

namespace discovery = envoy::service::discovery::v3;
using namespace testing_client;
using namespace testing_resources;
using std::chrono::milliseconds;
constexpr milliseconds kWait(10000);

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
    if (refuse_) {
      // Ends the stream at once, while the client is still sending its subscriptions.
      std::lock_guard lock(mu_);
      stream_ = nullptr;
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "namespace \"curl\" does not exist");
    }
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
  void RefuseStreams() { refuse_ = true; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  grpc::ServerReaderWriter<discovery::DeltaDiscoveryResponse, discovery::DeltaDiscoveryRequest>* stream_ = nullptr;
  std::vector<discovery::DeltaDiscoveryRequest> requests_;
  std::atomic<bool> refuse_{false};
};

class ScriptedTest : public ::testing::Test {
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

TEST_F(ScriptedTest, TheControlPlanesReasonForEndingTheStreamIsWhatTheClientReports) {
  ads_.RefuseStreams();
  FakeAgent agent;
  XdsClient client(FastOptions(address(), XdsProtocol::kDelta), agent.Fn(), nullptr);
  client.Start();
  // Every attempt ends the same way; the writes still in flight do not replace the reason.
  ASSERT_TRUE(client.WaitFor([](const XdsClientStatus& s) { return s.disconnects >= 3; }, kWait));
  EXPECT_EQ(client.status().last_stream_error, "9 namespace \"curl\" does not exist");
}

TEST(XdsClientStop, ReturnsPromptlyWhileATlsHandshakeHangs) {
  // Accepted by the kernel; the TLS handshake is never answered.
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor silent(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  XdsClientOptions options = FastOptions("127.0.0.1:" + std::to_string(silent.local_endpoint().port()),
                                         XdsProtocol::kDelta);
  options.connect_timeout = std::chrono::seconds(30);
  const std::string key = *x509::NewPrivateKey();
  x509::Profile ca;
  ca.common_name = "test root";
  ca.is_ca = true;
  const std::string roots = *x509::SelfSignedCa(key, ca);
  options.credentials = [&roots]() -> absl::StatusOr<ControlPlaneCredentials> {
    auto tls = net::ServerVerifyingContext(roots, "", "");
    if (!tls.ok()) return tls.status();
    return ControlPlaneCredentials{*tls, ""};
  };
  FakeAgent agent;
  XdsClient client(std::move(options), agent.Fn(), nullptr);
  client.Start();
  ASSERT_TRUE(client.WaitFor([](const XdsClientStatus& s) { return s.state == XdsConnectionState::kConnecting; }, kWait));
  const auto began = std::chrono::steady_clock::now();
  client.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::seconds(2));
  EXPECT_EQ(client.status().state, XdsConnectionState::kStopped);
  EXPECT_EQ(client.status().connects, 0u);
}

TEST_F(ScriptedTest, WaitsForReferencedResourcesThenNacksWhatIsMissingAndAcksOnceComplete) {
  FakeAgent agent;
  XdsClientOptions o = FastOptions(address(), XdsProtocol::kDelta);
  o.timing.incomplete_timeout = milliseconds(300);
  XdsClient client(o, agent.Fn(), nullptr);
  client.Start();
  ASSERT_TRUE(ads_.Send(Response<v1::ChainSet>("1", {{"chains", Chains("audit@aa")}})));
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
  ASSERT_TRUE(ads_.Send(Response<v1::ChainSet>("2", {{"chains", Chains("audit@aa")}})));
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
  o.timing.endpoints_warming = milliseconds(2000);
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

}  // namespace
}  // namespace meshplug::agent::xds
