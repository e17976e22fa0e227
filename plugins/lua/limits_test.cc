// A limit breach or a script error fails only its own request, within budget, while other
// requests on the same worker (io_context, thread and Lua state) go on.
#include <gtest/gtest.h>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "plugins/lua/lua_state.h"
#include "plugins/lua/testing.h"

namespace meshplug::plugins::lua {
namespace {

namespace asio = boost::asio;
using plugins::http_client::testing::RunAll;
using testing::LogCapture;
using testing::LoopbackServer;
using testing::MakeRequest;
using testing::MustLoad;
using testing::RunRequest;
using Reply = http::response<http::string_body>;
using Clock = std::chrono::steady_clock;

// One script, one behaviour per path. "/wait" calls the server at `host` and so stays
// suspended while the other requests run on the same thread and state.
std::string Script(const std::string& host) {
  return R"lua(
local function recurse(n) return 1 + recurse(n + 1) end
local bad = {
  ["/loop"] = function() while true do end end,
  ["/recursion"] = function() recurse(1) end,
  ["/memory"] = function()
    local t = {}
    for i = 1, math.huge do t[i] = string.rep("x", 1024) .. i end
  end,
  ["/concat"] = function() local s = "x" while true do s = s .. s end end,
  ["/swallow-loop"] = function()
    while true do pcall(function() while true do end end) end
  end,
  ["/swallow-memory"] = function()
    while true do
      pcall(function() local s = "x" while true do s = s .. s end end)
    end
  end,
  ["/swallow-xpcall"] = function()
    while true do xpcall(function() while true do end end, function(e) return e end) end
  end,
  ["/swallow-coroutine"] = function()
    while true do
      coroutine.resume(coroutine.create(function() while true do end end))
    end
  end,
  ["/slow-c"] = function()
    local s = string.rep("x", 1 << 20)
    for i = 1, math.huge do s:find("y", 1, true) end
  end,
  ["/backtrack"] = function() return string.rep("a", 1200):find(".-.-.-x") end,
  ["/swallow-backtrack"] = function()
    while true do pcall(string.find, string.rep("a", 1200), ".-.-.-x") end
  end,
  ["/rep-empty"] = function() return string.rep("", 1 << 60) .. string.rep("x", 1 << 40) end,
  ["/move"] = function() table.move({1}, 1, math.maxinteger - 1, 2) end,
  ["/gsub"] = function() return string.rep("ab", 4000):gsub("(.-)(.-)(.-)z", "%3") end,
  ["/error"] = function() local t = nil; return t.field end,
}
function on_request(req, ctx)
  local path = req.path
  if bad[path] then return bad[path]() end
  if path == "/wait" then
    local res, err = http_call{host = ")lua" +
         host + R"lua(", path = "/", timeout = 5}
    assert(res, err)
    req.headers:set("x-waited", res.status)
  end
  req.headers:set("x-ok", "yes")
end
)lua";
}

struct Fixture : ::testing::Test {
  Fixture()
      : server(io, [this](const auto&) -> asio::awaitable<Reply> {
          // Answers only once the bad request is over, so /wait spans it.
          asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(1));
          for (int i = 0; i < 10000 && !bad_done; ++i) {
            timer.expires_after(std::chrono::milliseconds(1));
            co_await timer.async_wait(asio::use_awaitable);
          }
          co_return Reply(http::status::ok, 11);
        }) {
    // Time is generous so that each test meets the limit it is about even on a loaded
    // machine; SlowLibraryCalls tightens it.
    LuaLimits limits;
    limits.time_per_call = std::chrono::seconds(10);
    LoadWith(limits);
  }

  void LoadWith(const LuaLimits& limits) {
    LuaPluginOptions options;
    options.log = logs.sink();
    options.limits = limits;
    plugin = MustLoad("limits", Script(server.address()), options);
  }

  asio::awaitable<Verdict> Request(std::string path, HttpContext& ctx, bool mark_done) {
    ctx = MakeRequest(http::verb::get, path);
    Verdict verdict = co_await plugin->OnRequestHeaders(ctx);
    if (mark_done) bad_done = true;
    co_return verdict;
  }

  // Runs `path` next to a request that waits in http_call on the same io_context.
  void ExpectFailsAlone(const std::string& path, std::string_view error) {
    ASSERT_TRUE(plugin);
    HttpContext waiting, bad;
    std::vector<asio::awaitable<Verdict>> tasks;
    tasks.push_back(Request("/wait", waiting, false));
    tasks.push_back(Request(path, bad, true));
    const auto start = Clock::now();
    auto results = RunAll(io, std::move(tasks));
    ASSERT_TRUE(results[0] && results[1]) << "a request did not finish";

    EXPECT_EQ(results[1]->kind, Verdict::Kind::kRespond);
    EXPECT_EQ(results[1]->response.status, 500u);
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));  // takes ~0.1 s
    EXPECT_EQ(plugin->stats().errors(), 1u);
    EXPECT_TRUE(logs.Contains("error limits: on_request failed: ")) << ::testing::PrintToString(logs.lines());
    EXPECT_TRUE(logs.Contains(error)) << ::testing::PrintToString(logs.lines());

    EXPECT_EQ(results[0]->kind, Verdict::Kind::kContinue);
    EXPECT_EQ(waiting.request["x-waited"], "200");
    EXPECT_EQ(waiting.request["x-ok"], "yes");
    // The same state serves the next request.
    HttpContext next = MakeRequest(http::verb::get, "/fine");
    EXPECT_EQ(RunRequest(io, *plugin, next).kind, Verdict::Kind::kContinue);
    EXPECT_EQ(next.request["x-ok"], "yes");
  }

  asio::io_context io;
  bool bad_done = false;
  LoopbackServer server;
  LogCapture logs;
  std::shared_ptr<LuaPlugin> plugin;
};

TEST_F(Fixture, InfiniteLoop) {
  ExpectFailsAlone("/loop", "limits:4: instruction limit of 1000000 exceeded");
}
// The Lua stack (up to a million slots) outgrows the memory cap before Lua's own limit.
TEST_F(Fixture, DeepRecursion) { ExpectFailsAlone("/recursion", "memory limit of 16777216 bytes"); }
TEST_F(Fixture, MemoryBomb) { ExpectFailsAlone("/memory", "memory limit of 16777216 bytes exceeded"); }
TEST_F(Fixture, HugeConcatenation) {
  ExpectFailsAlone("/concat", "memory limit of 16777216 bytes exceeded");
}
TEST_F(Fixture, LoopCaughtByPcall) {
  ExpectFailsAlone("/swallow-loop", "instruction limit of 1000000 exceeded");
}
TEST_F(Fixture, MemoryErrorCaughtByPcall) {
  ExpectFailsAlone("/swallow-memory", "memory limit of 16777216 bytes exceeded");
}
TEST_F(Fixture, LoopCaughtByXpcall) {
  ExpectFailsAlone("/swallow-xpcall", "instruction limit of 1000000 exceeded");
}
TEST_F(Fixture, LoopInScriptCoroutine) {
  ExpectFailsAlone("/swallow-coroutine", "instruction limit of 1000000 exceeded");
}
TEST_F(Fixture, SlowLibraryCalls) {
  LuaLimits limits;
  limits.time_per_call = std::chrono::milliseconds(100);
  LoadWith(limits);
  // Library work is charged to the budget: the loop breaches it long before 100 ms.
  ExpectFailsAlone("/slow-c", "instruction limit of 1000000 exceeded");
}
// Work inside C that the count hook cannot see: pattern backtracking, repetition, moves.
TEST_F(Fixture, PatternBacktrackingIsBounded) {
  ExpectFailsAlone("/backtrack", "instruction limit of 1000000 exceeded");
}
TEST_F(Fixture, PatternBacktrackingIsBoundedEvenUnderPcall) {
  ExpectFailsAlone("/swallow-backtrack", "instruction limit of 1000000 exceeded");
}
TEST_F(Fixture, GsubBacktrackingIsBounded) { ExpectFailsAlone("/gsub", "instruction limit of 1000000 exceeded"); }
TEST_F(Fixture, RepOfNothingIsInstantAndRepOfMuchIsCharged) {
  ExpectFailsAlone("/rep-empty", "instruction limit of 1000000 exceeded");
}
TEST_F(Fixture, TableMoveIsCharged) { ExpectFailsAlone("/move", "instruction limit of 1000000 exceeded"); }
TEST_F(Fixture, RuntimeError) { ExpectFailsAlone("/error", "attempt to index a nil value"); }

TEST_F(Fixture, AllStatesTogetherHaveACapToo) {
  LuaState::SetProcessMemoryLimit(LuaState::ProcessMemoryUsed() + (2 << 20));
  ExpectFailsAlone("/memory", "memory limit of all Lua plugins");
  LuaState::SetProcessMemoryLimit(0);
}

TEST_F(Fixture, MemoryIsReclaimedAfterBreach) {
  ASSERT_TRUE(plugin);
  for (int i = 0; i < 3; ++i) {
    HttpContext bomb = MakeRequest(http::verb::get, "/memory");
    EXPECT_EQ(RunRequest(io, *plugin, bomb).response.status, 500u);
    HttpContext fine = MakeRequest(http::verb::get, "/fine");
    EXPECT_EQ(RunRequest(io, *plugin, fine).kind, Verdict::Kind::kContinue);
  }
  EXPECT_EQ(plugin->stats().errors(), 3u);
}

TEST(Limits, ErrorInOnePluginLeavesOthersAlone) {
  LogCapture logs;
  LuaPluginOptions options;
  options.log = logs.sink();
  auto broken = MustLoad("broken", "function on_request(req) error('boom') end", options);
  auto healthy = MustLoad("healthy", "function on_request(req) req.headers:set('x-h', '1') end",
                          options);
  ASSERT_TRUE(broken && healthy);
  asio::io_context io;
  for (int i = 0; i < 3; ++i) {
    HttpContext ctx = MakeRequest(http::verb::get, "/");
    EXPECT_EQ(RunRequest(io, *broken, ctx).response.status, 500u);
    EXPECT_EQ(RunRequest(io, *healthy, ctx).kind, Verdict::Kind::kContinue);
    EXPECT_EQ(ctx.request["x-h"], "1");
  }
  EXPECT_EQ(broken->stats().errors(), 3u);
  EXPECT_EQ(healthy->stats().errors(), 0u);
  EXPECT_TRUE(logs.Contains("error broken: on_request failed: broken:1: boom"))
      << ::testing::PrintToString(logs.lines());
}

TEST(Limits, WaitingInHttpCallDoesNotCountAsRunningTime) {
  asio::io_context io;
  LoopbackServer server(io, [](const auto&) -> asio::awaitable<Reply> {
    asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(300));
    co_await timer.async_wait(asio::use_awaitable);
    co_return Reply(http::status::ok, 11);
  });
  LuaPluginOptions options;
  options.limits.time_per_call = std::chrono::milliseconds(50);
  auto plugin = MustLoad("waits",
                         "function on_request(req)\n"
                         "  local res = assert(http_call{host = '" + server.address() + "'})\n"
                         "  req.headers:set('x-status', res.status)\n"
                         "end",
                         options);
  ASSERT_TRUE(plugin);
  HttpContext ctx = MakeRequest(http::verb::get, "/");
  EXPECT_EQ(RunRequest(io, *plugin, ctx).kind, Verdict::Kind::kContinue);
  EXPECT_EQ(ctx.request["x-status"], "200");
}

TEST(Limits, TopLevelIsBudgetedToo) {
  LuaPluginOptions options;
  options.log = [](LogLevel, std::string_view, std::string_view) {};
  auto plugin = LuaPlugin::Create("spin", "v1", "while true do end", options);
  ASSERT_FALSE(plugin.ok());
  EXPECT_NE(plugin.status().message().find("plugin spin: spin:1: instruction limit"),
            std::string::npos)
      << plugin.status();
}

TEST(Limits, TooManyHttpCalls) {
  asio::io_context io;
  LoopbackServer server(io, [](const auto&) -> asio::awaitable<Reply> {
    co_return Reply(http::status::ok, 11);
  });
  LogCapture logs;
  LuaPluginOptions options;
  options.log = logs.sink();
  options.limits.http_calls_per_call = 2;
  auto plugin = MustLoad("chatty",
                         "function on_request(req)\n"
                         "  for i = 1, 10 do http_call{host = '" + server.address() + "'} end\n"
                         "end",
                         options);
  ASSERT_TRUE(plugin);
  HttpContext ctx = MakeRequest(http::verb::get, "/");
  EXPECT_EQ(RunRequest(io, *plugin, ctx).response.status, 500u);
  EXPECT_EQ(server.requests(), 2);
  EXPECT_TRUE(logs.Contains("more than 2 calls in one on_request"))
      << ::testing::PrintToString(logs.lines());
}

}  // namespace
}  // namespace meshplug::plugins::lua
