// The agent's Lua runtime behind ScriptFactory.
#include "agent/chains/script_runtime.h"

#include <gtest/gtest.h>

#include "plugins/lua/testing.h"

namespace meshplug::agent::chains {
namespace {

// A PluginScript resource as the control plane names it: after its plugin.
v1::PluginScript Script(const std::string& plugin, const std::string& source, const std::string& version = "7") {
  v1::PluginScript s;
  s.set_name(plugin);
  s.set_plugin(plugin);
  s.set_source(source);
  s.set_version(version);
  return s;
}

TEST(ScriptRuntimeTest, OnePluginPerScriptVersionSharedByChainSetsAndDirections) {
  auto runtime = MakeScriptRuntime();
  ASSERT_NE(runtime, nullptr);
  const auto v1 = Script("stamp", "function on_request(req, ctx) req.headers:set('x-a', '1') end");
  auto out = runtime->MakeHttp(v1, false);
  auto in = runtime->MakeHttp(v1, true);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_TRUE(in.ok()) << in.status();
  EXPECT_EQ(out->get(), in->get());
  EXPECT_EQ((*out)->name(), "stamp");

  // A new script comes under the same name: it is a new plugin, never the old one reused.
  auto v2 = runtime->MakeHttp(Script("stamp", "function on_request(req, ctx) end", "8"), false);
  ASSERT_TRUE(v2.ok());
  EXPECT_NE(v2->get(), out->get());
  EXPECT_EQ(runtime->MakeHttp(v1, false)->get(), out->get()) << "the first is still held, and still itself";
  // The Plugin's metadata changed, not its script: the running instance (and its state).
  auto relabelled = runtime->MakeHttp(Script("stamp", v1.source(), "9"), false);
  ASSERT_TRUE(relabelled.ok());
  EXPECT_EQ(relabelled->get(), out->get());
}

TEST(ScriptRuntimeTest, AScriptThatDoesNotLoadFailsWithThePluginNamed) {
  auto runtime = MakeScriptRuntime();
  auto p = runtime->MakeHttp(Script("boom", "error('boom: this plugin fails to load')"), false);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("version 7: plugin boom: "), std::string::npos) << p.status();
  EXPECT_NE(p.status().message().find("fails to load"), std::string::npos) << p.status();
  // Not remembered: a later build tries again (and fails again).
  EXPECT_FALSE(runtime->MakeTcp(Script("boom", "error('boom: this plugin fails to load')"), true).ok());
}

TEST(ScriptRuntimeTest, ScriptErrorsAndCountersReachStats) {
  auto runtime = MakeScriptRuntime();
  auto plugin = runtime->MakeHttp(Script("broken",
                                         "function on_request(req, ctx)\n"
                                         "  counter('seen', 1)\n"
                                         "  local t = nil\n"
                                         "  return t.field\n"
                                         "end\n"),
                                  false);
  ASSERT_TRUE(plugin.ok()) << plugin.status();
  boost::asio::io_context io;
  for (int i = 0; i < 2; ++i) {
    auto ctx = plugins::lua::testing::MakeRequest(plugins::http::verb::get, "/");
    EXPECT_EQ(plugins::lua::testing::RunRequest(io, **plugin, ctx).response.status, 500u);
  }
  Stats stats;
  runtime->ExportStats(stats);
  runtime->ExportStats(stats);  // counted once, not per export
  EXPECT_EQ(stats.CounterValue("meshplug_plugin_errors_total", {{"plugin", "broken"}}), 2u);
  EXPECT_NE(stats.RenderPrometheus().find("meshplug_plugin_tally{plugin=\"broken\",name=\"seen\"} 2"),
            std::string::npos)
      << stats.RenderPrometheus();
}

}  // namespace
}  // namespace meshplug::agent::chains
