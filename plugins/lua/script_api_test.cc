// The script API as docs/plugins.md describes it.
#include <gtest/gtest.h>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "plugins/lua/testing.h"

namespace meshplug::plugins::lua {
namespace {

namespace asio = boost::asio;
using testing::JsonConfigs;
using testing::LogCapture;
using testing::LoopbackServer;
using testing::MakeRequest;
using testing::MustLoad;
using testing::RunFor;
using testing::RunRequest;
using Reply = http::response<http::string_body>;

struct ScriptApi : ::testing::Test {
  std::shared_ptr<LuaPlugin> Load(const std::string& script, const std::string& name = "p") {
    LuaPluginOptions options;
    options.log = logs.sink();
    return MustLoad(name, script, options);
  }
  // The log lines, for failure messages.
  std::string Logs() const { return ::testing::PrintToString(logs.lines()); }

  asio::io_context io;
  LogCapture logs;
  HttpContext ctx = MakeRequest(http::verb::get, "/get?x=1");
};

TEST_F(ScriptApi, ReadsAndRewritesMethodAndPath) {
  auto plugin = Load(
      "function on_request(req)\n"
      "  assert(req.method == 'GET' and req.path == '/get?x=1')\n"
      "  req.method = 'POST'; req.path = '/post'\n"
      "end");
  ASSERT_TRUE(plugin);
  EXPECT_EQ(RunRequest(io, *plugin, ctx).kind, Verdict::Kind::kContinue) << Logs();
  EXPECT_EQ(ctx.request.method(), http::verb::post);
  EXPECT_EQ(ctx.request.target(), "/post");
}

TEST_F(ScriptApi, HeadersGetSetAddRemoveEach) {
  ctx.request.set("x-old", "1");
  ctx.request.set("X-Case", "v");
  auto plugin = Load(
      "function on_request(req)\n"
      "  local h = req.headers\n"
      "  assert(h:get('x-case') == 'v' and h:get('missing') == nil)\n"
      "  h:set('x-new', 'a'); h:add('x-multi', '1'); h:add('x-multi', 2)\n"
      "  h:remove('x-old'); h:set('x-case', nil)\n"
      "  local seen = {}\n"
      "  for name, value in h:each() do seen[#seen + 1] = name .. '=' .. value end\n"
      "  h:set('x-seen', table.concat(seen, ','))\n"
      "end");
  ASSERT_TRUE(plugin);
  EXPECT_EQ(RunRequest(io, *plugin, ctx).kind, Verdict::Kind::kContinue) << Logs();
  EXPECT_EQ(ctx.request["x-seen"], "x-new=a,x-multi=1,x-multi=2");
  EXPECT_EQ(ctx.request.count("x-old"), 0u);
  EXPECT_EQ(ctx.request.count("x-case"), 0u);
}

TEST_F(ScriptApi, RefusesHeaderInjectionAndProxyManagedHeaders) {
  auto plugin = Load(
      "function on_request(req)\n"
      "  assert(not pcall(req.headers.set, req.headers, 'x-a', 'v\\r\\nx-evil: 1'))\n"
      "  assert(not pcall(req.headers.set, req.headers, 'bad name', 'v'))\n"
      "  assert(not pcall(req.headers.set, req.headers, 'Content-Length', '5'))\n"
      "  assert(not pcall(req.headers.add, req.headers, 'transfer-encoding', 'chunked'))\n"
      "  assert(not pcall(function() req.path = '/a b' end))\n"
      "end");
  ASSERT_TRUE(plugin);
  EXPECT_EQ(RunRequest(io, *plugin, ctx).kind, Verdict::Kind::kContinue) << Logs();
  EXPECT_EQ(ctx.request.count("x-a"), 0u);
}

TEST_F(ScriptApi, RespondEndsThePhase) {
  auto plugin = Load(
      "function on_request(req)\n"
      "  respond(403, {['content-type'] = 'text/plain', ['x-why'] = 'denied'}, 'no\\n')\n"
      "  req.headers:set('x-after', 'ran')\n"
      "end");
  ASSERT_TRUE(plugin);
  const Verdict verdict = RunRequest(io, *plugin, ctx);
  ASSERT_EQ(verdict.kind, Verdict::Kind::kRespond) << Logs();
  EXPECT_EQ(verdict.response.status, 403u);
  EXPECT_EQ(verdict.response.body, "no\n");
  EXPECT_EQ(verdict.response.headers["x-why"], "denied");
  EXPECT_EQ(ctx.request.count("x-after"), 0u);
}

TEST_F(ScriptApi, ConfigServiceAndWorkload) {
  JsonConfigs configs;
  configs.Set("httpbin.httpbin", "p",
              R"({"Paths": ["/get", "/headers"], "Timeout": 2, "Ratio": 0.5,
                  "FailOpen": true, "Nested": {"Key": "v"}, "Gone": null})");
  WorkloadIdentity workload{"curl-1", "curl", "curl-sa", {{"app", "curl"}}};
  ctx.configs = &configs;
  ctx.workload = &workload;
  auto plugin = Load(
      "function on_request(req, ctx)\n"
      "  local c = ctx.config\n"
      "  assert(c.Paths[1] == '/get' and c.Paths[2] == '/headers' and #c.Paths == 2)\n"
      "  assert(math.type(c.Timeout) == 'integer' and c.Timeout == 2 and c.Ratio == 0.5)\n"
      "  assert(c.FailOpen == true and c.Nested.Key == 'v' and c.Gone == nil)\n"
      "  assert(ctx.config == c, 'cached per call')\n"
      "  assert(ctx.service == 'httpbin.httpbin' and ctx.route == nil)\n"
      "  local w = ctx.workload\n"
      "  assert(w.name == 'curl-1' and w.namespace == 'curl' and w.service_account == 'curl-sa')\n"
      "  assert(w.labels.app == 'curl')\n"
      "end");
  ASSERT_TRUE(plugin);
  EXPECT_EQ(RunRequest(io, *plugin, ctx).kind, Verdict::Kind::kContinue) << Logs();
}

TEST_F(ScriptApi, NoConfigIsNil) {
  auto plugin = Load("function on_request(req, ctx) assert(ctx.config == nil) end");
  ASSERT_TRUE(plugin);
  EXPECT_EQ(RunRequest(io, *plugin, ctx).kind, Verdict::Kind::kContinue) << Logs();
}

TEST_F(ScriptApi, SharedValuesReachLaterPluginsAndPhases) {
  auto first = Load(
      "function on_request(req, ctx) ctx.shared.user = 'alice'; ctx.shared.n = 3 end", "first");
  auto second = Load(
      "function on_request(req, ctx)\n"
      "  assert(ctx.shared.user == 'alice' and ctx.shared.n == '3')\n"
      "  ctx.shared.user = nil\n"
      "end\n"
      "function on_log(ctx)\n"
      "  assert(ctx.shared.n == '3' and ctx.shared.user == nil)\n"
      "  counter('logged')\n"
      "  ctx.shared.late = 'x'\n"
      "end",
      "second");
  ASSERT_TRUE(first && second);
  EXPECT_EQ(RunRequest(io, *first, ctx).kind, Verdict::Kind::kContinue) << Logs();
  EXPECT_EQ(RunRequest(io, *second, ctx).kind, Verdict::Kind::kContinue) << Logs();
  EXPECT_EQ(ctx.shared.count("user"), 0u);
  second->OnLog(ctx);
  EXPECT_EQ(second->stats().counters()["logged"], 1);
  // on_log is read-only: the write failed the call, which is counted and logged.
  EXPECT_EQ(ctx.shared.count("late"), 0u);
  EXPECT_EQ(second->stats().errors(), 1u);
  EXPECT_TRUE(logs.Contains("on_log failed: second:8: ctx.shared is read-only in on_log")) << Logs();
}

TEST_F(ScriptApi, ResponsePhase) {
  ctx.response.emplace();
  ctx.response->result(http::status::ok);
  ctx.response->set("server", "upstream");
  auto plugin = Load(
      "function on_response(resp, ctx)\n"
      "  assert(resp.status == 200 and resp.headers:get('server') == 'upstream')\n"
      "  resp.status = 202\n"
      "  resp.headers:set('x-plugin', 'seen')\n"
      "end");
  ASSERT_TRUE(plugin);
  // Only the header steps the script defines are called and timed.
  EXPECT_FALSE(plugin->has_request_header_step());
  EXPECT_TRUE(plugin->has_response_header_step());
  auto verdict = RunFor(io, plugin->OnResponseHeaders(ctx));
  ASSERT_TRUE(verdict);
  EXPECT_EQ(verdict->kind, Verdict::Kind::kContinue) << Logs();
  EXPECT_EQ(ctx.response->result_int(), 202u);
  EXPECT_EQ((*ctx.response)["x-plugin"], "seen");
}

TEST_F(ScriptApi, BufferedRequestBody) {
  auto plugin = Load(
      "request_body = 'buffer'\n"
      "function on_request_body(req, ctx)\n"
      "  assert(req.last and req.method == 'GET')\n"
      "  req.body = req.body:upper()\n"
      "end");
  ASSERT_TRUE(plugin);
  EXPECT_EQ(plugin->request_body_mode(), BodyMode::kBuffer);
  EXPECT_EQ(plugin->response_body_mode(), BodyMode::kNone);
  std::string body = "hello";
  auto verdict = RunFor(io, plugin->OnRequestBody(ctx, body, true));
  ASSERT_TRUE(verdict);
  EXPECT_EQ(verdict->kind, Verdict::Kind::kContinue) << Logs();
  EXPECT_EQ(body, "HELLO");
}

TEST_F(ScriptApi, BodyFlagIsValidated) {
  auto plugin = LuaPlugin::Create("p", "v1", "response_body = 'all'");
  ASSERT_FALSE(plugin.ok());
  EXPECT_NE(plugin.status().message().find("response_body must be \"buffer\" or \"stream\""),
            std::string::npos)
      << plugin.status();
  auto not_function = LuaPlugin::Create("p", "v1", "on_request = 1");
  ASSERT_FALSE(not_function.ok());
  EXPECT_NE(not_function.status().message().find("on_request must be a function"),
            std::string::npos);
}

TEST_F(ScriptApi, TcpPhases) {
  TcpContext tcp;
  tcp.peer = "10.0.0.1:5000";
  tcp.service = "db.data";
  auto plugin = Load(
      "function on_tcp_connect(conn, ctx)\n"
      "  if conn.peer == '10.0.0.9:1' then respond(403, nil, 'bye') end\n"
      "  ctx.shared.peer = conn.peer\n"
      "end\n"
      "function on_tcp_data(conn, ctx, direction, data)\n"
      "  if direction == 'to_upstream' then return data:upper() end\n"
      "end\n"
      "function on_tcp_close(conn, ctx) log('info', 'closed ' .. ctx.shared.peer) end");
  ASSERT_TRUE(plugin);
  EXPECT_TRUE(plugin->handles_tcp());
  EXPECT_FALSE(plugin->handles_http());
  auto connect = RunFor(io, plugin->OnConnect(tcp));
  ASSERT_TRUE(connect);
  EXPECT_EQ(connect->kind, Verdict::Kind::kContinue) << Logs();
  std::string up = "ping", down = "pong";
  ASSERT_TRUE(RunFor(io, plugin->OnData(tcp, Direction::kDownstreamToUpstream, up)));
  ASSERT_TRUE(RunFor(io, plugin->OnData(tcp, Direction::kUpstreamToDownstream, down)));
  EXPECT_EQ(up, "PING");
  EXPECT_EQ(down, "pong");
  plugin->OnClose(tcp);
  EXPECT_TRUE(logs.Contains("info p: closed 10.0.0.1:5000")) << Logs();
  tcp.peer = "10.0.0.9:1";
  auto refused = RunFor(io, plugin->OnConnect(tcp));
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->kind, Verdict::Kind::kRespond);
  EXPECT_EQ(refused->response.body, "bye");
}

// A connection through a tunnel from another agent carries the caller's verified identity.
TEST_F(ScriptApi, TcpPluginsSeeTheTunnelsCaller) {
  auto plugin = Load(
      "function on_tcp_connect(conn, ctx)\n"
      "  if ctx.peer.identity ~= 'spiffe://cluster.local/ns/a/sa/reporting' then respond(403, nil, 'who?') end\n"
      "end");
  ASSERT_TRUE(plugin);
  TcpContext tcp;
  tcp.peer_identity = "spiffe://cluster.local/ns/a/sa/reporting";
  auto allowed = RunFor(io, plugin->OnConnect(tcp));
  ASSERT_TRUE(allowed);
  EXPECT_EQ(allowed->kind, Verdict::Kind::kContinue) << Logs();
  tcp.peer_identity.clear();  // plaintext: no identity
  auto refused = RunFor(io, plugin->OnConnect(tcp));
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->kind, Verdict::Kind::kRespond);
}

TEST_F(ScriptApi, LogPrintAndCounters) {
  auto plugin = Load(
      "function on_request(req)\n"
      "  log('warn', 'careful'); print('a', 1, nil)\n"
      "  counter('seen'); counter('bytes', 10)\n"
      "  assert(not pcall(log, 'loud', 'x'))\n"
      "  assert(not pcall(counter, 'bad name'))\n"
      "end");
  ASSERT_TRUE(plugin);
  EXPECT_EQ(RunRequest(io, *plugin, ctx).kind, Verdict::Kind::kContinue) << Logs();
  EXPECT_EQ(RunRequest(io, *plugin, ctx).kind, Verdict::Kind::kContinue) << Logs();
  EXPECT_TRUE(logs.Contains("warn p: careful"));
  EXPECT_TRUE(logs.Contains("info p: a\t1\tnil"));
  const auto counters = plugin->stats().counters();
  EXPECT_EQ(counters.at("seen"), 2);
  EXPECT_EQ(counters.at("bytes"), 20);
}

TEST_F(ScriptApi, HttpCallRoundTrip) {
  LoopbackServer server(io, [](const http::request<http::string_body>& req)
                                -> asio::awaitable<Reply> {
    Reply reply(http::status::accepted, 11);
    reply.set("x-got", std::string(req.method_string()) + " " + std::string(req.target()) + " " +
                           std::string(req["x-token"]) + " " + req.body());
    reply.insert("x-dup", "1");
    reply.insert("x-dup", "2");
    reply.body() = "ok";
    co_return reply;
  });
  auto plugin = Load(
      "function on_request(req)\n"
      "  local res, err = http_call{host = '" + server.address() + "', method = 'PUT',\n"
      "    path = '/check', headers = {['x-token'] = 't1'}, body = 'b', timeout = 2}\n"
      "  assert(res, err)\n"
      "  assert(res.status == 202 and res.body == 'ok', res.status)\n"
      "  assert(res.headers['x-got'] == 'PUT /check t1 b', res.headers['x-got'])\n"
      "  assert(res.headers['x-dup'] == '1, 2')\n"
      "  local lower = http_call{host = '" + server.address() + "', method = 'get', path = '/x'}\n"
      "  assert(lower and lower.headers['x-got'] == 'get /x', 'methods are sent as given')\n"
      "  local ext = http_call{host = '" + server.address() + "', method = 'PURGE', path = '/x'}\n"
      "  assert(ext and ext.headers['x-got'] == 'PURGE /x')\n"
      "  local bad, bad_why = http_call{host = '" + server.address() + "', method = 'GE T'}\n"
      "  assert(bad == nil and bad_why == 'http_call: the method is not an HTTP token', bad_why)\n"
      "  local none, why = http_call{host = '" + testing::ClosedLoopbackAddress() + "'}\n"
      "  assert(none == nil and why:find('connect'), why)\n"
      "  assert(not pcall(http_call, {host = 'nope'}))\n"
      "  assert(not pcall(http_call, {host = '" + server.address() + "', timeout = 0}))\n"
      "end");
  ASSERT_TRUE(plugin);
  EXPECT_EQ(RunRequest(io, *plugin, ctx).kind, Verdict::Kind::kContinue) << Logs();
}

// With the worker's pool in the context (the agent sets it), http_calls of successive
// requests share a kept-alive connection.
TEST_F(ScriptApi, HttpCallKeepsConnectionsInTheWorkersPool) {
  LoopbackServer server(io, [](const http::request<http::string_body>&) -> asio::awaitable<Reply> {
    Reply reply(http::status::ok, 11);
    reply.body() = "ok";
    co_return reply;
  });
  auto plugin = Load(
      "function on_request(req)\n"
      "  local res, err = http_call{host = '" + server.address() + "', path = '/check'}\n"
      "  assert(res and res.body == 'ok', err)\n"
      "end");
  ASSERT_TRUE(plugin);
  net::UpstreamPool pool(io.get_executor());
  for (int i = 0; i < 3; ++i) {
    HttpContext request = MakeRequest(http::verb::get, "/");
    request.pool = &pool;
    EXPECT_EQ(RunRequest(io, *plugin, request).kind, Verdict::Kind::kContinue) << Logs();
  }
  EXPECT_EQ(server.requests(), 3);
  EXPECT_EQ(server.connections(), 1);
  EXPECT_EQ(pool.idle(), 1u);
}

TEST_F(ScriptApi, WaitingIsRefusedWhereItCannotWork) {
  auto plugin = Load(
      "function on_log(ctx) http_call{host = '127.0.0.1:1'} end\n"
      "function on_request(req)\n"
      "  if req.path == '/yield' then coroutine.yield() end\n"
      "  local co = coroutine.wrap(function() respond(200) end)\n"
      "  co()\n"
      "end");
  ASSERT_TRUE(plugin);
  EXPECT_EQ(RunRequest(io, *plugin, ctx).response.status, 500u);
  EXPECT_TRUE(logs.Contains("respond must be called from the phase function")) << Logs();
  plugin->OnLog(ctx);
  EXPECT_TRUE(logs.Contains("http_call is not available in on_log")) << Logs();
  HttpContext yielding = MakeRequest(http::verb::get, "/yield");
  EXPECT_EQ(RunRequest(io, *plugin, yielding).response.status, 500u);
  EXPECT_TRUE(logs.Contains("coroutine.yield outside a coroutine the script created")) << Logs();
}

TEST_F(ScriptApi, HostObjectsExpireWithTheirCall) {
  auto plugin = Load(
      "local saved\n"
      "function on_request(req, ctx)\n"
      "  if saved then return saved.headers:get('x') end\n"
      "  saved = req\n"
      "end");
  ASSERT_TRUE(plugin);
  EXPECT_EQ(RunRequest(io, *plugin, ctx).kind, Verdict::Kind::kContinue) << Logs();
  EXPECT_EQ(RunRequest(io, *plugin, ctx).response.status, 500u);
  EXPECT_TRUE(logs.Contains("request object used outside the call it was passed to")) << Logs();
}

TEST_F(ScriptApi, ScriptsWithoutAPhaseLetItPass) {
  auto plugin = Load("function on_response(resp) resp.status = 500 end");
  ASSERT_TRUE(plugin);
  EXPECT_EQ(RunRequest(io, *plugin, ctx).kind, Verdict::Kind::kContinue);
  // No response yet: the response step has nothing to show and passes.
  auto verdict = RunFor(io, plugin->OnResponseHeaders(ctx));
  ASSERT_TRUE(verdict);
  EXPECT_EQ(verdict->kind, Verdict::Kind::kContinue);
}

}  // namespace
}  // namespace meshplug::plugins::lua
