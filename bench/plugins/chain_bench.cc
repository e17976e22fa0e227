// Micro-benchmark: the per-request cost of a chain of three small Lua plugins versus the
// same three written as C++ built-ins, run through the same step loop on one io_context.
// Prints ns/request; no assertions.
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "plugins/api/plugin.h"
#include "plugins/lua/lua_plugin.h"

namespace meshplug::plugins {
namespace {

using Chain = std::vector<std::shared_ptr<HttpPlugin>>;

// The three plugins, in Lua.
constexpr char kTagScript[] = R"lua(
function on_request(req, ctx) req.headers:set("x-request-id", "bench-1") end
)lua";
constexpr char kGuardScript[] = R"lua(
function on_request(req, ctx)
  if req.headers:get("x-block") then respond(403, nil, "blocked") end
end
)lua";
constexpr char kRouteScript[] = R"lua(
function on_request(req, ctx) ctx.shared.route = req.path end
)lua";

// The same three as built-ins.
class TagPlugin final : public HttpPlugin {
 public:
  const std::string& name() const override { return name_; }
  awaitable<Verdict> OnRequestHeaders(HttpContext& ctx) override {
    ctx.request.set("x-request-id", "bench-1");
    co_return Verdict::Continue();
  }

 private:
  std::string name_ = "tag";
};

class GuardPlugin final : public HttpPlugin {
 public:
  const std::string& name() const override { return name_; }
  awaitable<Verdict> OnRequestHeaders(HttpContext& ctx) override {
    if (ctx.request.count("x-block") != 0) co_return Verdict::Respond(403, "blocked");
    co_return Verdict::Continue();
  }

 private:
  std::string name_ = "guard";
};

class RoutePlugin final : public HttpPlugin {
 public:
  const std::string& name() const override { return name_; }
  awaitable<Verdict> OnRequestHeaders(HttpContext& ctx) override {
    ctx.shared.insert_or_assign("route", std::string(ctx.request.target()));
    co_return Verdict::Continue();
  }

 private:
  std::string name_ = "route";
};

// The agent's HTTP step loop for plugins that may suspend (Lua's), minus the network:
// request steps in order until one answers, response steps in reverse over those that
// ran, then the log steps. (Built-in modules' steps are called directly by the agent.)
awaitable<void> RunChain(const Chain& chain, HttpContext& ctx) {
  size_t ran = 0;
  for (const auto& plugin : chain) {
    ++ran;
    const Verdict verdict = co_await plugin->OnRequestHeaders(ctx);
    if (verdict.kind != Verdict::Kind::kContinue) break;
  }
  ctx.response.emplace();
  ctx.response->result(http::status::ok);
  for (size_t i = ran; i-- > 0;) co_await chain[i]->OnResponseHeaders(ctx);
  for (const auto& plugin : chain) plugin->OnLog(ctx);
}

awaitable<void> RunRequests(const Chain& chain, int requests) {
  for (int i = 0; i < requests; ++i) {
    HttpContext ctx;
    ctx.request.method(http::verb::get);
    ctx.request.target("/get");
    ctx.request.set(http::field::host, "httpbin.httpbin:14001");
    ctx.request.set(http::field::user_agent, "bench");
    ctx.service = "httpbin.httpbin";
    co_await RunChain(chain, ctx);
  }
}

double NanosPerRequest(const Chain& chain, int requests) {
  boost::asio::io_context io;
  boost::asio::co_spawn(io, RunRequests(chain, requests / 10), boost::asio::detached);  // warm up
  io.run();
  io.restart();
  const auto start = std::chrono::steady_clock::now();
  boost::asio::co_spawn(io, RunRequests(chain, requests), boost::asio::detached);
  io.run();
  const std::chrono::duration<double, std::nano> elapsed = std::chrono::steady_clock::now() - start;
  return elapsed.count() / requests;
}

std::shared_ptr<HttpPlugin> MustLoad(const char* name, const char* script) {
  auto plugin = lua::LuaPlugin::Create(name, "v1", script);
  if (!plugin.ok()) {
    std::fprintf(stderr, "%s\n", std::string(plugin.status().message()).c_str());
    std::exit(1);
  }
  return *plugin;
}

}  // namespace
}  // namespace meshplug::plugins

int main(int argc, char** argv) {
  using namespace meshplug::plugins;
  const int requests = argc > 1 ? std::atoi(argv[1]) : 200'000;
  if (requests <= 0) {
    std::fprintf(stderr, "usage: chain_bench [requests > 0]\n");
    return 2;
  }
  const Chain builtins = {std::make_shared<TagPlugin>(), std::make_shared<GuardPlugin>(),
                          std::make_shared<RoutePlugin>()};
  const Chain lua = {MustLoad("tag", kTagScript), MustLoad("guard", kGuardScript),
                     MustLoad("route", kRouteScript)};
  const Chain empty;
  const double base = NanosPerRequest(empty, requests);
  const double native = NanosPerRequest(builtins, requests);
  const double scripted = NanosPerRequest(lua, requests);
  std::printf("requests per run:        %d\n", requests);
  std::printf("empty chain:             %8.0f ns/request\n", base);
  std::printf("3 built-in plugins:      %8.0f ns/request (+%.0f)\n", native, native - base);
  std::printf("3 Lua plugins:           %8.0f ns/request (+%.0f)\n", scripted, scripted - base);
  std::printf("Lua cost per plugin:     %8.0f ns over its built-in twin\n",
              (scripted - native) / 3);
  return 0;
}
