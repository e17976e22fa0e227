// Building chain sets from snapshots and swapping them, also under load.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "agent/agent.h"
#include "agent/testing/test_support.h"

namespace meshplug::agent::chains {
namespace {

using namespace std::chrono_literals;
using testing::AddService;
using testing::BaseSnapshot;
using testing::LocalAgentOptions;
using testing::Client;
using testing::TestUpstream;
using testing::WaitFor;

// Stamps the version of the chain set it belongs to on the request (request step) and
// on the response (response step), so a response shows whether one request ever saw two
// sets.
class VersionStamp : public plugins::HttpPlugin {
 public:
  explicit VersionStamp(std::string version) : version_(std::move(version)) {}
  const std::string& name() const override { return name_; }
  plugins::awaitable<plugins::Verdict> OnRequestHeaders(plugins::HttpContext& ctx) override {
    ctx.shared["stamp"] = version_;
    co_return plugins::Verdict::Continue();
  }
  plugins::awaitable<plugins::Verdict> OnResponseHeaders(plugins::HttpContext& ctx) override {
    ctx.response->set("x-request-version", ctx.shared["stamp"]);
    ctx.response->set("x-response-version", version_);
    co_return plugins::Verdict::Continue();
  }

 private:
  std::string name_ = "version-stamp";
  std::string version_;
};

class WithVersionStamp : public BuiltinModuleFactory {
 public:
  absl::StatusOr<std::shared_ptr<plugins::HttpPlugin>> MakeHttp(
      std::string_view name, const plugins::builtin::BuiltinEnv& env) const override {
    if (name == "version-stamp") {
      return std::make_shared<VersionStamp>(env.mesh->snapshot().version());
    }
    return BuiltinModuleFactory::MakeHttp(name, env);
  }
};

v1::Snapshot StampedSnapshot(const std::string& version, uint16_t upstream) {
  v1::Snapshot s = BaseSnapshot(version);
  v1::ChainModule stamp;
  stamp.set_name("version-stamp");
  stamp.set_priority(200);
  stamp.set_builtin(true);
  auto* chain = s.mutable_chains()->mutable_outbound_http();
  chain->Add()->CopyFrom(stamp);
  std::rotate(chain->begin(), chain->end() - 1, chain->end());
  AddService(s, "web.shop", {upstream});
  return s;
}

TEST(ChainSetTest, FailedBuildKeepsTheRunningSetAndNamesTheProblem) {
  Agent agent(LocalAgentOptions(2));
  v1::Snapshot good = BaseSnapshot("v1");
  AddService(good, "web.shop", {1});
  ASSERT_TRUE(agent.Apply(good).ok());

  v1::Snapshot bad = good;
  bad.set_version("v2");
  bad.mutable_services(0)->mutable_routes(0)->mutable_clusters(0)->set_cluster("nope");
  absl::Status s = agent.Apply(bad);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("unknown cluster \"nope\""), std::string::npos) << s;

  bad = good;
  bad.mutable_chains()->mutable_outbound_http(0)->set_name("no-such-module");
  s = agent.Apply(bad);
  EXPECT_NE(s.message().find("chain outbound-http module \"no-such-module\""), std::string::npos)
      << s;

  bad = good;
  bad.mutable_chains()->mutable_outbound_http(0)->set_script("token-injector@abc");
  s = agent.Apply(bad);
  EXPECT_NE(s.message().find("no PluginScript \"token-injector@abc\""), std::string::npos) << s;
  v1::PluginScript* script = bad.add_scripts();
  script->set_name("token-injector@abc");
  script->set_plugin("token-injector");
  s = agent.Apply(bad);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("no Lua runtime"), std::string::npos) << s;

  bad = good;
  bad.mutable_services(0)->mutable_routes(0)->mutable_match()->set_regex("([");
  s = agent.Apply(bad);
  EXPECT_NE(s.message().find("bad regex"), std::string::npos) << s;

  EXPECT_EQ(agent.chains().Get()->version(), "v1");
  EXPECT_EQ(agent.swaps(), 1u);
}

TEST(ChainSetTest, ChainsKeepTheSnapshotOrder) {
  Agent agent(LocalAgentOptions(2));
  ASSERT_TRUE(agent.Apply(BaseSnapshot("v1")).ok());
  std::vector<std::string> names;
  for (const auto& entry : agent.chains().Get()->http(false)) names.push_back(entry.name);
  EXPECT_EQ(names, (std::vector<std::string>{"http-routing", "metrics", "tracing", "logging",
                                             "circuit-breaker", "http-load-balancing",
                                             "http-default"}));
  EXPECT_EQ(agent.chains().Get()->tcp(true).size(), 3u);
}

// While clients keep requests in flight on kept-alive connections, the set is swapped
// 1,000 times: no request fails, none sees two versions, and old sets are freed.
TEST(ChainSetTest, SwapsUnderLoad) {
  TestUpstream upstream("u");
  Agent agent(LocalAgentOptions(2), std::make_unique<WithVersionStamp>());
  ASSERT_TRUE(agent.Apply(StampedSnapshot("v0", upstream.port())).ok());
  ASSERT_TRUE(agent.Start().ok());

  constexpr int kClients = 4;
  constexpr int kSwaps = 1000;
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0}, mixed{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&] {
      Client c(agent.outbound_port());
      // Bounded: the swaps end the loop; the count cap guards against a stuck swapper.
      for (int n = 0; n < 1'000'000 && !stop.load(); ++n) {
        auto r = c.Get("web.shop", "/");
        if (!r || r->result_int() != 200) {
          ++failed;
          return;
        }
        if ((*r)["x-request-version"] != (*r)["x-response-version"]) ++mixed;
        ++ok;
      }
    });
  }
  ASSERT_TRUE(WaitFor([&] { return ok.load() >= kClients; }));
  for (int v = 1; v <= kSwaps; ++v) {
    ASSERT_TRUE(agent.Apply(StampedSnapshot("v" + std::to_string(v), upstream.port())).ok());
  }
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(mixed.load(), 0);
  EXPECT_GT(ok.load(), kClients);
  EXPECT_EQ(agent.swaps(), kSwaps + 1u);
  // Every set but the current one is freed once its last request has ended.
  EXPECT_TRUE(WaitFor([] { return ChainSet::Live() == 1; })) << ChainSet::Live();
  Client c(agent.outbound_port());
  auto r = c.Get("web.shop", "/");
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)["x-response-version"], "v1000");
}

}  // namespace
}  // namespace meshplug::agent::chains
