#include "plugins/builtin/builtins.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <set>
#include <string>

#include "common/chain_info.h"
#include "plugins/builtin/state.h"

namespace meshplug::plugins::builtin {
namespace {

using routing::MeshView;

TEST(StateTest, TokenBucketRefills) {
  RateLimiters limiters;
  v1::RateLimit limit;
  limit.set_requests(2);
  limit.mutable_per()->set_seconds(1);
  auto t0 = Clock::now();
  EXPECT_TRUE(limiters.TryTake("s", limit, t0));
  EXPECT_TRUE(limiters.TryTake("s", limit, t0));
  EXPECT_FALSE(limiters.TryTake("s", limit, t0));
  EXPECT_TRUE(limiters.TryTake("s", limit, t0 + std::chrono::milliseconds(500)));
  EXPECT_TRUE(limiters.TryTake("other", limit, t0));
}

TEST(StateTest, BreakerOpensAfterConsecutiveErrorsAndCloses) {
  CircuitBreakers breakers;
  v1::CircuitBreaker config;
  config.set_consecutive_errors(2);
  config.mutable_open_duration()->set_seconds(10);
  auto t0 = Clock::now();
  breakers.Record("c", config, true, false, t0);
  breakers.Record("c", config, false, false, t0);  // a success resets the run
  breakers.Record("c", config, true, false, t0);
  EXPECT_FALSE(breakers.IsOpen("c", t0));
  breakers.Record("c", config, true, false, t0);
  EXPECT_TRUE(breakers.IsOpen("c", t0));
  EXPECT_FALSE(breakers.IsOpen("c", t0 + std::chrono::seconds(11)));
}


TEST(RoutingTest, WeightedSplitsDoNotRestartWithEverySnapshot) {
  v1::Snapshot s;
  for (const char* name : {"one", "two"}) s.add_clusters()->set_name(name);
  v1::Service* svc = s.add_services();
  svc->set_name("web.shop");
  svc->add_hosts("web.shop");
  v1::HttpRoute* r = svc->add_routes();
  r->set_name("split");
  r->mutable_match()->set_prefix("/");
  for (const char* name : {"one", "two"}) {
    v1::WeightedCluster* c = r->add_clusters();
    c->set_cluster(name);
    c->set_weight(50);
  }
  Stats stats;
  BuiltinState state(stats);
  std::set<std::string> first;
  for (int i = 0; i < 64 && first.size() < 2; ++i) {
    // Each round is a new snapshot, hence a new chain set and routing module.
    auto mesh = MeshView::Build(std::make_shared<v1::Snapshot>(s));
    ASSERT_TRUE(mesh.ok());
    auto routing = MakeHttpBuiltin(builtin_names::kHttpRouting, BuiltinEnv{*mesh, false, &state});
    ASSERT_TRUE(routing.ok());
    plugins::HttpContext ctx;
    ctx.request.target("/");
    ctx.request.set(http::field::host, "web.shop");
    boost::asio::io_context io;
    boost::asio::co_spawn(io, (*routing)->OnRequestHeaders(ctx), boost::asio::detached);
    io.run();
    ASSERT_TRUE(ctx.upstream);
    first.insert(ctx.upstream->cluster);
  }
  EXPECT_EQ(first.size(), 2u);
}


TEST(BuiltinsTest, EveryDefaultModuleOfEveryChainExists) {
  auto mesh = MeshView::Build(std::make_shared<v1::Snapshot>());
  ASSERT_TRUE(mesh.ok());
  Stats stats;
  BuiltinState state(stats);
  for (const ChainInfo& chain : Chains()) {
    const BuiltinEnv env{*mesh, chain.inbound, &state};
    for (const BuiltinDefault& d : chain.builtins) {
      const absl::Status made = chain.http ? MakeHttpBuiltin(d.module, env).status() : MakeTcpBuiltin(d.module, env).status();
      EXPECT_TRUE(made.ok()) << chain.name << ": " << made;
    }
  }
  EXPECT_EQ(MakeHttpBuiltin("no-such-module", {*mesh, false, &state}).status().message(),
            "no built-in http module \"no-such-module\"");
}

}  // namespace
}  // namespace meshplug::plugins::builtin
