// Building chain sets from snapshots and swapping them, also under load.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "agent/agent.h"
#include "agent/testing/test_support.h"
#include "common/strings.h"

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
  absl::Status s = agent.Apply(bad).status();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("unknown cluster \"nope\""), std::string::npos) << s;

  bad = good;
  bad.mutable_chains()->mutable_outbound_http(0)->set_name("no-such-module");
  s = agent.Apply(bad).status();
  EXPECT_NE(s.message().find("chain outbound-http module \"no-such-module\""), std::string::npos)
      << s;

  bad = good;
  bad.mutable_chains()->mutable_outbound_http(0)->set_script("token-injector@abc");
  s = agent.Apply(bad).status();
  EXPECT_NE(s.message().find("no PluginScript \"token-injector@abc\""), std::string::npos) << s;
  v1::PluginScript* script = bad.add_scripts();
  script->set_name("token-injector@abc");
  script->set_plugin("token-injector");
  s = agent.Apply(bad).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("no Lua runtime"), std::string::npos) << s;

  bad = good;
  bad.mutable_services(0)->mutable_routes(0)->mutable_match()->set_regex("([");
  s = agent.Apply(bad).status();
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

// A chain calls and times only the header steps its plugins have: no built-in module has
// a response header step, and those that only observe have neither.
TEST(ChainSetTest, ChainsSkipTheHeaderStepsPluginsDoNotHave) {
  TestUpstream upstream("u");
  Agent agent(LocalAgentOptions(1), std::make_unique<WithVersionStamp>());
  ASSERT_TRUE(agent.Apply(StampedSnapshot("v1", upstream.port())).ok());
  std::vector<std::string> steps;
  for (const auto& entry : agent.chains().Get()->http(false)) {
    steps.push_back(Cat(entry.name, entry.request_time ? " request" : "", entry.response_time ? " response" : ""));
  }
  EXPECT_EQ(steps, (std::vector<std::string>{"version-stamp request response", "http-routing request", "metrics",
                                             "tracing request", "logging", "circuit-breaker request",
                                             "http-load-balancing request", "http-default request"}));
  // The response steps that remain still run.
  ASSERT_TRUE(agent.Start().ok());
  Client c(agent.outbound_port());
  auto r = c.Get("web.shop", "/");
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)["x-response-version"], "v1");
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

// Scripts whose source is "fail" do not load; the others stamp their source on the
// response ("x-script").
class StampingScripts : public ScriptFactory {
 public:
  absl::StatusOr<std::shared_ptr<plugins::HttpPlugin>> MakeHttp(const v1::PluginScript& script,
                                                                bool) const override {
    if (script.source() == "fail") return absl::InvalidArgumentError("top level: boom");
    return std::make_shared<ScriptStamp>(script.plugin(), script.source());
  }
  absl::StatusOr<std::shared_ptr<plugins::TcpPlugin>> MakeTcp(const v1::PluginScript&, bool) const override {
    return absl::UnimplementedError("no TCP");
  }

 private:
  class ScriptStamp : public plugins::HttpPlugin {
   public:
    ScriptStamp(std::string name, std::string script) : name_(std::move(name)), script_(std::move(script)) {}
    const std::string& name() const override { return name_; }
    plugins::awaitable<plugins::Verdict> OnRequestHeaders(plugins::HttpContext&) override {
      co_return plugins::Verdict::Continue();
    }
    plugins::awaitable<plugins::Verdict> OnResponseHeaders(plugins::HttpContext& ctx) override {
      ctx.response->set("x-script", script_);
      co_return plugins::Verdict::Continue();
    }

   private:
    std::string name_, script_;
  };
};

// A snapshot that mounts plugin "stamp" (its script resource named after it, as the control
// plane names it; source `source`) first outbound.
v1::Snapshot WithScript(const std::string& version, uint16_t upstream, const std::string& source) {
  const std::string script = "stamp";
  v1::Snapshot s = BaseSnapshot(version);
  AddService(s, "web.shop", {upstream});
  v1::PluginScript* ps = s.add_scripts();
  ps->set_name(script);
  ps->set_plugin("stamp");
  ps->set_source(source);
  auto* chain = s.mutable_chains()->mutable_outbound_http();
  v1::ChainModule* m = chain->Add();
  m->set_name("stamp");
  m->set_priority(200);
  m->set_script(script);
  std::rotate(chain->begin(), chain->end() - 1, chain->end());
  return s;
}

// A script that does not load fails only itself: its previous version keeps running, and
// later updates still apply.
TEST(ChainSetTest, AScriptThatDoesNotLoadKeepsItsPreviousVersion) {
  TestUpstream upstream("u");
  StampingScripts scripts;
  Agent agent(LocalAgentOptions(1), nullptr, &scripts);
  ASSERT_TRUE(agent.Apply(WithScript("v1", upstream.port(), "ok 1")).ok());
  ASSERT_TRUE(agent.Start().ok());
  Client c(agent.outbound_port());
  EXPECT_EQ((*c.Get("web.shop", "/"))["x-script"], "ok 1");

  auto isolated = agent.Apply(WithScript("v2", upstream.port(), "fail"));
  ASSERT_TRUE(isolated.ok()) << isolated.status();
  ASSERT_EQ(isolated->size(), 1u);
  EXPECT_EQ((*isolated)[0],
            "chain outbound-http module \"stamp\" did not load: top level: boom; its previous version "
            "keeps running");
  EXPECT_EQ(agent.chains().Get()->version(), "v2");
  auto r = c.Get("web.shop", "/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200);
  EXPECT_EQ((*r)["x-script"], "ok 1");

  // A later change (another service) applies; the plugin is still isolated the same way.
  v1::Snapshot v3 = WithScript("v3", upstream.port(), "fail");
  AddService(v3, "api.shop", {upstream.port()});
  ASSERT_TRUE(agent.Apply(v3).ok());
  EXPECT_EQ(c.Get("api.shop", "/")->result_int(), 200);
  EXPECT_EQ((*c.Get("web.shop", "/"))["x-script"], "ok 1");

  // Fixed: the new version runs.
  ASSERT_TRUE(agent.Apply(WithScript("v4", upstream.port(), "ok 3"))->empty());
  EXPECT_EQ((*c.Get("web.shop", "/"))["x-script"], "ok 3");
}

TEST(ChainSetTest, AScriptThatNeverLoadedRefusesItsChainsRequests) {
  TestUpstream upstream("u");
  StampingScripts scripts;
  Agent agent(LocalAgentOptions(1), nullptr, &scripts);
  auto isolated = agent.Apply(WithScript("v1", upstream.port(), "fail"));
  ASSERT_TRUE(isolated.ok()) << isolated.status();
  ASSERT_EQ(isolated->size(), 1u);
  EXPECT_NE((*isolated)[0].find("the chain refuses requests until it loads"), std::string::npos);
  ASSERT_TRUE(agent.Start().ok());
  Client c(agent.outbound_port());
  auto r = c.Get("web.shop", "/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 503);
  EXPECT_EQ(r->body(), "plugin stamp is not available\n");
  EXPECT_EQ(upstream.requests(), 0);

  // A later change while it still does not load: the stand-in is no version of it.
  isolated = agent.Apply(WithScript("v2", upstream.port(), "fail"));
  ASSERT_TRUE(isolated.ok()) << isolated.status();
  ASSERT_EQ(isolated->size(), 1u);
  EXPECT_NE((*isolated)[0].find("the chain refuses requests until it loads"), std::string::npos) << (*isolated)[0];
  EXPECT_EQ(c.Get("web.shop", "/")->result_int(), 503);
}

}  // namespace
}  // namespace meshplug::agent::chains
