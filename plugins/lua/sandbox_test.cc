// Each forbidden global and function is unreachable from a plugin script.
#include "plugins/lua/sandbox.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "plugins/lua/testing.h"

namespace meshplug::plugins::lua {
namespace {

using testing::LogCapture;
using testing::MakeRequest;
using testing::MustLoad;
using testing::RunRequest;

// Runs `body` as on_request and expects it to pass (Continue): the body asserts.
Verdict RunBody(const std::string& body, LogCapture* logs = nullptr) {
  LuaPluginOptions options;
  if (logs != nullptr) options.log = logs->sink();
  auto plugin = MustLoad("sandbox", "function on_request(req, ctx)\n" + body + "\nend", options);
  if (plugin == nullptr) return Verdict::Respond(599);
  boost::asio::io_context io;
  HttpContext ctx = MakeRequest(http::verb::get, "/");
  return RunRequest(io, *plugin, ctx);
}

void ExpectPasses(const std::string& body) {
  LogCapture logs;
  const Verdict verdict = RunBody(body, &logs);
  EXPECT_EQ(verdict.kind, Verdict::Kind::kContinue)
      << (logs.lines().empty() ? "" : logs.lines().back());
}

class ForbiddenGlobal : public ::testing::TestWithParam<const char*> {};

TEST_P(ForbiddenGlobal, IsNil) {
  ExpectPasses(std::string("assert(") + GetParam() + " == nil, '" + GetParam() + " is reachable')");
}

INSTANTIATE_TEST_SUITE_P(Sandbox, ForbiddenGlobal,
                         ::testing::Values("io", "os", "package", "require", "load", "loadstring",
                                           "loadfile", "dofile", "debug", "collectgarbage",
                                           "rawget", "rawset", "rawequal", "rawlen", "getfenv",
                                           "setfenv", "module", "newproxy", "string.dump",
                                           "_G.io", "_ENV.os"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (c == '.') c = '_';
                           }
                           return name;
                         });

TEST(Sandbox, StringDumpUnreachableThroughStringMethods) {
  ExpectPasses("assert(('x').dump == nil)");
}

TEST(Sandbox, StringMetatableIsHidden) {
  ExpectPasses("assert(getmetatable('') == false)");
}

TEST(Sandbox, HostObjectMetatablesAreHidden) {
  ExpectPasses(
      "assert(getmetatable(req) == 'locked')\n"
      "assert(getmetatable(req.headers) == 'locked')\n"
      "assert(getmetatable(ctx) == 'locked')\n"
      "assert(not pcall(setmetatable, req, {}))");
}

TEST(Sandbox, HostObjectsRefuseRawAccessAndUnknownWrites) {
  ExpectPasses(
      "assert(type(req) == 'userdata')\n"
      "assert(not pcall(function() ctx.anything = 1 end))\n"
      "assert(not pcall(function() req.status = 1 end))");
}

TEST(Sandbox, SetmetatableRefusesFinalizers) {
  ExpectPasses(
      "local ok, err = pcall(setmetatable, {}, {__gc = function() end})\n"
      "assert(not ok and err:find('__gc'), err)\n"
      "assert(getmetatable(setmetatable({}, {__index = {}})) ~= nil)");
}

TEST(Sandbox, SafeLibrariesAreThere) {
  ExpectPasses(
      "assert(string.format('%d', 7) == '7' and ('ab'):upper() == 'AB')\n"
      "assert(table.concat({1, 2}, ',') == '1,2' and math.max(1, 2) == 2)\n"
      "assert(utf8.char(72) == 'H' and select('#', 1, 2) == 2)\n"
      "local co = coroutine.wrap(function(a) local b = coroutine.yield(a + 1) return b * 2 end)\n"
      "assert(co(1) == 2 and co(5) == 10)\n"
      "assert(pcall(error, 'x') == false and _G == _ENV and type(print) == 'function')");
}

TEST(Sandbox, RequestCoroutineCannotBeResumedByScript) {
  ExpectPasses(
      "local me = coroutine.running()\n"
      "local ok, err = pcall(coroutine.resume, me)\n"
      "assert(not ok and err:find('cannot be resumed'), err)\n"
      "assert(not pcall(coroutine.close, me))");
}

TEST(Sandbox, GlobalsDoNotLeakBetweenPlugins) {
  auto writer = MustLoad("writer", "function on_request() leaked = 'yes'; string.extra = 1 end");
  auto reader = MustLoad("reader",
                         "function on_request() assert(leaked == nil and string.extra == nil) end");
  ASSERT_TRUE(writer && reader);
  boost::asio::io_context io;
  HttpContext ctx = MakeRequest(http::verb::get, "/");
  EXPECT_EQ(RunRequest(io, *writer, ctx).kind, Verdict::Kind::kContinue);
  EXPECT_EQ(RunRequest(io, *reader, ctx).kind, Verdict::Kind::kContinue);
}

TEST(Sandbox, RefusesBytecode) {
  auto plugin = LuaPlugin::Create("p", "v1", std::string("\x1bLua\x54\x00", 6));
  ASSERT_FALSE(plugin.ok());
  EXPECT_NE(plugin.status().message().find("binary"), std::string::npos) << plugin.status();
}

}  // namespace
}  // namespace meshplug::plugins::lua
