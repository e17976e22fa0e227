// The Publisher on states built from manifests, with a clock the test moves.
#include "control_plane/controller/publisher.h"

#include <gtest/gtest.h>

#include "common/xds_types.h"
#include "control_plane/testing/endpoint_count.h"
#include "control_plane/testing/mesh_fixtures.h"
#include "control_plane/testing/mesh_state_yaml.h"

namespace meshplug::control_plane::controller {
namespace {

using std::chrono::milliseconds;

std::string Workload(const std::string& name, const std::string& address) {
  return "apiVersion: meshplug.io/v1\nkind: Workload\nmetadata: {name: " + name +
         ", namespace: httpbin, labels: {app: httpbin}}\nspec: {address: " + address + ", inboundPort: 15003}\n";
}

class PublisherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::AddYaml(state_, std::string(testing::kCurlHttpbinMesh) + "---\n" +
                                 "apiVersion: meshplug.io/v1\nkind: Workload\nmetadata: {name: curl-1, namespace: curl, "
                                 "labels: {app: curl}}\nspec: {address: 127.0.0.2, inboundPort: 15003}\n---\n" +
                                 Workload("httpbin-1", "127.0.0.3"));
    publisher_.Publish(state_, {"curl/curl-1", "httpbin/httpbin-1"});
  }

  // The httpbin endpoints the curl agent's resources hold.
  size_t CurlSees() { return testing::EndpointCount(*cache_.Get("curl/curl-1"), "httpbin.httpbin|14001"); }

  Publisher::Clock::time_point now_{};
  // How long a push to the curl agent "takes": the clock moves when it is pushed (only
  // then: the other agents' pushes take no time).
  milliseconds push_{0};
  xds::SnapshotCache cache_;
  std::shared_ptr<void> watch_ = cache_.Watch("curl/curl-1", [this](const xds::Resources&) { now_ += push_; });
  xds::AgentRegistry registry_;
  Publisher publisher_{cache_, registry_, [this] { return now_; }};
  translate::MeshState state_;
};

// In a burst, the agents already connected get new endpoints at most half of the time:
// after an update that took 500 ms, the next waits until 500 ms have passed; the joining
// workload's own agent is never held back, and an update outside a burst goes out at once.
TEST_F(PublisherTest, InABurstTheOthersEndpointsWaitAsLongAsTheLastUpdateTook) {
  ASSERT_EQ(CurlSees(), 1u);
  push_ = milliseconds(500);
  testing::AddYaml(state_, Workload("httpbin-2", "127.0.0.4"));
  publisher_.Publish(state_, {"httpbin/httpbin-2"}, /*may_hold=*/true);
  EXPECT_EQ(CurlSees(), 2u) << "nothing held back yet";
  EXPECT_FALSE(publisher_.RebaseDue());
  const auto last_update_end = now_;
  push_ = milliseconds(0);

  testing::AddYaml(state_, Workload("httpbin-3", "127.0.0.5"));
  publisher_.Publish(state_, {"httpbin/httpbin-3"}, /*may_hold=*/true);
  EXPECT_EQ(CurlSees(), 2u) << "held back: the last update took 500 ms, and none have passed since";
  ASSERT_TRUE(publisher_.RebaseDue());
  EXPECT_EQ(*publisher_.RebaseDue(), last_update_end + milliseconds(500));
  EXPECT_NE(cache_.Get("httpbin/httpbin-3"), nullptr) << "the new agent is not held back";

  publisher_.Publish(state_, {}, /*may_hold=*/true);
  EXPECT_EQ(CurlSees(), 2u) << "not due yet";
  now_ = *publisher_.RebaseDue();
  publisher_.Publish(state_, {}, /*may_hold=*/true);
  EXPECT_EQ(CurlSees(), 3u) << "due";
  EXPECT_FALSE(publisher_.RebaseDue());

  // Outside a burst, at once, however long the last update took.
  push_ = milliseconds(5000);
  testing::AddYaml(state_, Workload("httpbin-4", "127.0.0.6"));
  publisher_.Publish(state_, {"httpbin/httpbin-4"});
  testing::AddYaml(state_, Workload("httpbin-5", "127.0.0.7"));
  publisher_.Publish(state_, {"httpbin/httpbin-5"});
  EXPECT_EQ(CurlSees(), 5u);
  EXPECT_FALSE(publisher_.RebaseDue());
}

// A script changed while the connected agents' endpoints are held back in a burst goes
// out at once, in place; the held endpoints follow when due, the new script kept.
TEST_F(PublisherTest, AScriptChangedWhileEndpointsAreHeldBackGoesAtOnce) {
  testing::AddYaml(state_, std::string(testing::kPluginPolicyOn) + "---\n" +
                               testing::PluginYaml("p", 115, "function on_request(req, ctx) end") + "---\n" +
                               testing::PluginChainYaml("curl", "c", "outbound-http", "p", testing::AppSelector("curl")));
  publisher_.Publish(state_, {"curl/curl-1"});
  const std::string& scripts = xds_types::UrlOf<v1::PluginScript>();
  const auto source = [&] {
    v1::PluginScript s;
    const xds::EncodedResource* r = cache_.Get("curl/curl-1")->Find(scripts, "p");
    return r && s.ParseFromString(std::string(r->Value())) ? s.source() : "";
  };
  ASSERT_EQ(source(), "function on_request(req, ctx) end");
  push_ = milliseconds(500);  // the update of the connected agents takes 500 ms...
  testing::AddYaml(state_, Workload("httpbin-2", "127.0.0.4"));
  publisher_.Publish(state_, {"httpbin/httpbin-2"}, /*may_hold=*/true);
  push_ = milliseconds(0);

  // ... so the next one waits; the script changed in the same batch does not.
  testing::AddYaml(state_, Workload("httpbin-3", "127.0.0.5") + "---\n" +
                               testing::PluginYaml("p", 115, "function on_request(req, ctx) req.headers:set('x', '2') end"));
  publisher_.Publish(state_, {"httpbin/httpbin-3"}, /*may_hold=*/true, /*rescripted=*/{"p"});
  ASSERT_TRUE(publisher_.RebaseDue());
  EXPECT_EQ(CurlSees(), 2u) << "endpoints held back";
  EXPECT_EQ(source(), "function on_request(req, ctx) req.headers:set('x', '2') end");

  now_ = *publisher_.RebaseDue();
  publisher_.Publish(state_, {}, /*may_hold=*/true);
  EXPECT_EQ(CurlSees(), 3u);
  EXPECT_EQ(source(), "function on_request(req, ctx) req.headers:set('x', '2') end");
}

}  // namespace
}  // namespace meshplug::control_plane::controller
