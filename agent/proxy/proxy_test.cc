// The agent end to end in-process: real listeners, real upstream servers, real sockets.
#include <gtest/gtest.h>
#include <re2/re2.h>

#include <sys/socket.h>

#include <functional>

#include <mutex>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <map>
#include <memory>
#include <stdexcept>

#include "agent/agent.h"
#include "agent/testing/test_support.h"
#include "net/upstream_pool.h"

namespace meshplug::agent::proxy {
namespace {

using namespace std::chrono_literals;
using chains::BuiltinFactory;
using chains::BuiltinModuleFactory;
using testing::AddService;
using testing::BaseSnapshot;
using testing::LocalAgentOptions;
using testing::Client;
using testing::DrainUntilClosed;
using testing::FreePort;
using testing::HoldForever;
using testing::RawUpstream;
using testing::ReadRequestHeader;
using testing::TcpEchoUpstream;
using testing::TestUpstream;
using testing::WaitFor;
using testing::WriteAll;
namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
namespace http = boost::beast::http;

// The status of an optional response; 0 when there is none.
unsigned StatusOf(const std::optional<http::response<http::string_body>>& r) {
  return r ? r->result_int() : 0;
}

// A plugin for failure tests, mounted ahead of http-routing; what it does is chosen per
// request by the header "x-plugin-action".
class ActionPlugin : public plugins::HttpPlugin {
 public:
  static inline std::atomic<int> logged{0};

  const std::string& name() const override { return name_; }
  plugins::BodyMode request_body_mode() const override { return plugins::BodyMode::kStream; }

  plugins::awaitable<plugins::Verdict> OnRequestHeaders(plugins::HttpContext& ctx) override {
    std::string action(ctx.request["x-plugin-action"]);
    if (action == "throw-headers") throw std::runtime_error("secret-detail-42");
    if (action == "drop-connection") ctx.request.erase(http::field::connection);
    if (action == "has-pool") co_return plugins::Verdict::Respond(ctx.pool ? 200 : 500);
    if (action.starts_with("status:")) {
      co_return plugins::Verdict::Respond(std::stoul(action.substr(7)), "body");
    }
    co_return plugins::Verdict::Continue();
  }
  plugins::awaitable<plugins::Verdict> OnRequestBody(plugins::HttpContext& ctx, std::string&,
                                                     bool) override {
    if (ctx.request["x-plugin-action"] == "throw-body") {
      throw std::runtime_error("secret-detail-43");
    }
    co_return plugins::Verdict::Continue();
  }
  void OnLog(const plugins::HttpContext&) override { ++logged; }

 private:
  std::string name_ = "action";
};

class WithActionPlugin : public BuiltinModuleFactory {
 public:
  absl::StatusOr<std::shared_ptr<plugins::HttpPlugin>> MakeHttp(
      std::string_view name, const plugins::builtin::BuiltinEnv& env) const override {
    if (name == "action") return std::make_shared<ActionPlugin>();
    return BuiltinModuleFactory::MakeHttp(name, env);
  }
};

// Mounts the action plugin first in the outbound-http chain.
void MountActionPlugin(v1::Snapshot& s) {
  auto* chain = s.mutable_chains()->mutable_outbound_http();
  v1::ChainModule* m = chain->Add();
  m->set_name("action");
  m->set_priority(200);
  m->set_builtin(true);
  std::rotate(chain->begin(), chain->end() - 1, chain->end());
}

// A TCP service listening on `listen_port` whose one endpoint is address:port.
v1::Snapshot TcpSnapshot(const std::string& address, uint16_t port, uint16_t listen_port) {
  v1::Snapshot s = BaseSnapshot("v1");
  testing::AddTcpService(s, "db.data", 5432, address, port, listen_port);
  return s;
}

class ProxyTest : public ::testing::Test {
 protected:
  // Sends `pieces` through a TCP service whose endpoint is an echo server at `host`,
  // half-closes, and returns all that comes back ("" if the connection failed).
  std::string ThroughTcpEcho(const std::string& host, const std::vector<std::string>& pieces) {
    TcpEchoUpstream echo("echo:");
    uint16_t listen_port = FreePort();
    StartAgent(TcpSnapshot(host, echo.port(), listen_port));
    Client c(listen_port);
    if (!c.connected()) return "";
    for (const auto& piece : pieces) {
      if (!c.Send(piece)) return "";
    }
    return c.EndAndReadToEnd();
  }

  // An agent that routes web.shop to `port`.
  void StartWebShop(uint16_t port) {
    v1::Snapshot s = BaseSnapshot("v1");
    AddService(s, "web.shop", {port});
    StartAgent(s);
  }

  // An agent that routes web.shop to `port` and runs the action plugin first outbound.
  void StartWithActionPlugin(uint16_t port) {
    v1::Snapshot s = BaseSnapshot("v1");
    AddService(s, "web.shop", {port});
    MountActionPlugin(s);
    StartAgent(s, {}, std::make_unique<WithActionPlugin>());
  }

  // GET web.shop/ through an agent whose one route `configure` sets up: the status, and how
  // many requests reached the upstream.
  struct RouteOutcome {
    unsigned status = 0;
    int upstream_requests = 0;
  };
  RouteOutcome GetWithRoute(const std::function<void(v1::HttpRoute&)>& configure) {
    TestUpstream a("a");
    v1::Snapshot s = BaseSnapshot("v1");
    configure(*AddService(s, "web.shop", {a.port()}).mutable_routes(0));
    StartAgent(s);
    Client c(outbound());
    auto r = c.Get("web.shop", "/");
    return {r ? r->result_int() : 0u, a.requests()};
  }

  void StartAgent(v1::Snapshot snapshot, Limits limits = {},
                  std::unique_ptr<BuiltinFactory> builtins = nullptr) {
    AgentOptions options = LocalAgentOptions(2);
    options.limits = limits;
    options.drain_timeout = 5s;
    agent_ = std::make_unique<Agent>(options, std::move(builtins));
    // The sink is set before the workers start, as the agent's main does.
    agent_->SetAccessLog([this](std::string_view line) {
      std::lock_guard lock(access_log_mu_);
      access_log_.emplace_back(line);
    });
    ASSERT_TRUE(agent_->Apply(std::move(snapshot)).ok());
    ASSERT_TRUE(agent_->Start().ok());
  }
  std::vector<std::string> AccessLog() {
    std::lock_guard lock(access_log_mu_);
    return access_log_;
  }
  uint16_t outbound() const { return agent_->outbound_port(); }
  uint64_t Counter(std::string_view name, const Stats::Labels& labels) {
    return agent_->stats().CounterValue(name, labels);
  }

  std::mutex access_log_mu_;
  std::vector<std::string> access_log_;
  std::unique_ptr<Agent> agent_;
};

TEST_F(ProxyTest, RoutesByHostAndPathToWeightedClusters) {
  TestUpstream a("a"), b("b");
  v1::Snapshot s = BaseSnapshot("v1");
  v1::Service& svc = AddService(s, "httpbin.httpbin", {a.port()});
  // /b/... goes to a second cluster, ahead of the catch-all route.
  v1::Cluster* cb = s.add_clusters();
  cb->set_name("httpbin-b");
  v1::Endpoints* eb = s.add_endpoints();
  eb->set_cluster("httpbin-b");
  eb->add_endpoints()->set_address("127.0.0.1");
  eb->mutable_endpoints(0)->set_port(b.port());
  v1::HttpRoute route;
  route.set_name("to-b");
  route.mutable_match()->set_prefix("/b/");
  v1::HeaderMatch* h = route.mutable_match()->add_headers();
  h->set_name("x-test");
  h->set_regex("go-[0-9]+");
  route.add_clusters()->set_cluster("httpbin-b");
  route.mutable_clusters(0)->set_weight(1);
  *svc.mutable_routes()->Add() = route;
  svc.mutable_routes()->SwapElements(0, 1);
  StartAgent(s);

  Client c(outbound());
  auto r = c.Get("httpbin.httpbin:80", "/get");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200);
  EXPECT_EQ((*r)["x-upstream"], "a");
  r = c.Get("HTTPBIN", "/b/x", "x-test: go-42\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)["x-upstream"], "b");
  r = c.Get("httpbin", "/b/x", "x-test: nope\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)["x-upstream"], "a");
}

TEST_F(ProxyTest, DefaultAnswers403WithoutRouteAnd404WhenNothingForwarded) {
  TestUpstream a("a");
  v1::Snapshot s = BaseSnapshot("v1");
  v1::Service& svc = AddService(s, "web.shop", {a.port()});
  svc.mutable_routes(0)->mutable_match()->set_exact("/only");
  // A route whose clusters all weigh 0 matches but leads nowhere.
  v1::HttpRoute* nowhere = svc.add_routes();
  nowhere->set_name("nowhere");
  nowhere->mutable_match()->set_prefix("/nowhere");
  nowhere->add_clusters()->set_cluster("web.shop|80");
  StartAgent(s);
  Client c(outbound());
  auto r = c.Get("unknown.example", "/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 403);
  r = c.Get("web.shop", "/other");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 403);
  r = c.Get("web.shop", "/nowhere");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 404);
  r = c.Get("web.shop", "/only?x=1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200);
}

TEST_F(ProxyTest, RoundRobinsAcrossEndpointsAndReusesUpstreamConnections) {
  TestUpstream a("a"), b("b"), c3("c");
  v1::Snapshot s = BaseSnapshot("v1");
  AddService(s, "web.shop", {a.port(), b.port(), c3.port()});
  StartAgent(s);
  Client c(outbound());
  std::map<std::string, int> seen;
  for (int i = 0; i < 30; ++i) {
    auto r = c.Get("web.shop", "/");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->result_int(), 200);
    ++seen[std::string((*r)["x-upstream"])];
  }
  EXPECT_EQ(seen["a"], 10);
  EXPECT_EQ(seen["b"], 10);
  EXPECT_EQ(seen["c"], 10);
  // One downstream connection lives on one worker, whose pool keeps one connection each.
  EXPECT_EQ(a.connections(), 1);
  EXPECT_EQ(b.connections(), 1);
  EXPECT_EQ(c3.connections(), 1);
}

TEST_F(ProxyTest, RemovesHopByHopHeadersAndHonoursConnectionClose) {
  TestUpstream a("a");
  StartWebShop(a.port());
  Client c(outbound());
  auto r = c.Get("web.shop", "/", "Connection: close, x-private\r\nx-private: 1\r\nKeep-Alive: 5\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200);
  EXPECT_EQ((*r)[boost::beast::http::field::connection], "close");
  std::string seen = a.last_request_header();
  EXPECT_EQ(seen.find("x-private"), std::string::npos) << seen;
  EXPECT_EQ(seen.find("Keep-Alive"), std::string::npos) << seen;
  EXPECT_TRUE(c.ClosedByPeer());
}

TEST_F(ProxyTest, StartsATraceContinuesAValidOneAndRestartsAnInvalidOne) {
  TestUpstream a("a");
  StartWebShop(a.port());
  Client c(outbound());
  // A new W3C trace context: version 00, a 32-digit trace id and a 16-digit span id in
  // lowercase hex, neither all zeros, sampled.
  const auto expect_new_trace = [](const std::string& seen) {
    EXPECT_TRUE(RE2::PartialMatch(seen, R"(traceparent: 00-[0-9a-f]{32}-[0-9a-f]{16}-01\r\n)")) << seen;
    EXPECT_FALSE(RE2::PartialMatch(seen, "traceparent: 00-0{32}-|-0{16}-01")) << seen;
  };
  ASSERT_TRUE(c.Get("web.shop", "/"));
  expect_new_trace(a.last_request_header());
  const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  // The caller's trace id and flags go on, under a new span id.
  ASSERT_TRUE(c.Get("web.shop", "/", "traceparent: 00-" + trace + "-00f067aa0ba902b7-00\r\n"));
  std::string seen = a.last_request_header();
  std::string span;
  ASSERT_TRUE(RE2::PartialMatch(seen, "traceparent: 00-" + trace + R"(-([0-9a-f]{16})-00\r\n)", &span)) << seen;
  EXPECT_NE(span, "00f067aa0ba902b7");
  // Reserved flags go on as zero; sampled and random-trace-id stay.
  ASSERT_TRUE(c.Get("web.shop", "/", "traceparent: 00-" + trace + "-00f067aa0ba902b7-ff\r\n"));
  seen = a.last_request_header();
  EXPECT_TRUE(RE2::PartialMatch(seen, "traceparent: 00-" + trace + R"(-[0-9a-f]{16}-03\r\n)")) << seen;
  // An all-zero trace id is invalid (W3C): a new sampled trace starts.
  ASSERT_TRUE(c.Get("web.shop", "/", "traceparent: 00-" + std::string(32, '0') + "-00f067aa0ba902b7-00\r\n"));
  expect_new_trace(a.last_request_header());
  // The name in any case, and twice: the first one's trace goes on, in one field.
  const std::string other = "0af7651916cd43dd8448eb211c80319c";
  ASSERT_TRUE(c.Get("web.shop", "/",
                    "TraceParent: 00-" + trace + "-00f067aa0ba902b7-01\r\ntraceparent: 00-" + other +
                        "-b7ad6b7169203331-01\r\n"));
  seen = a.last_request_header();
  EXPECT_TRUE(RE2::PartialMatch(seen, "traceparent: 00-" + trace + R"(-[0-9a-f]{16}-01\r\n)")) << seen;
  EXPECT_FALSE(RE2::PartialMatch(seen, "(?i)traceparent(.|\n)*traceparent")) << seen;
}

TEST_F(ProxyTest, MapsUpstreamFailures) {
  TestUpstream a("a");
  uint16_t closed_port;
  {
    TestUpstream gone("gone");
    closed_port = gone.port();
  }
  v1::Snapshot s = BaseSnapshot("v1");
  AddService(s, "web.shop", {a.port()});
  AddService(s, "down.shop", {closed_port});
  s.mutable_clusters(0)->mutable_request_timeout()->set_nanos(200'000'000);
  StartAgent(s);
  Client c(outbound());
  auto r = c.Get("down.shop", "/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 503);
  // /slow answers only when released: the 504 cannot depend on timing.
  r = c.Get("web.shop", "/slow");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 504);
  EXPECT_EQ(a.slow_waiting(), 1);
  r = c.Get("web.shop", "/reset");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 502);
  r = c.Get("web.shop", "/status/418");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 418);
}

// A grpc-timeout shorter than the route's timeout (15 s by default here) bounds the wait;
// the name is matched in any case, as every field name.
TEST_F(ProxyTest, AGrpcTimeoutBoundsTheWaitForTheResponse) {
  TestUpstream a("a");
  StartWebShop(a.port());
  Client c(outbound());
  for (const char* field : {"grpc-timeout: 100m\r\n", "Grpc-Timeout: 100m\r\n"}) {
    auto r = c.Get("web.shop", "/slow", field);
    ASSERT_TRUE(r) << field;
    EXPECT_EQ(r->result_int(), 504) << field;
  }
  EXPECT_EQ(a.slow_waiting(), 2);
}

// One retry of a 503, after 1 ms.
void RetryOnce503(v1::RetryPolicy& retry) {
  retry.set_num_retries(1);
  retry.add_retry_on_status(503);
  retry.mutable_backoff_base()->set_nanos(1'000'000);
}

TEST_F(ProxyTest, RetriesConfiguredStatusesOnAnotherEndpoint) {
  TestUpstream a("a"), b("b");
  v1::Snapshot s = BaseSnapshot("v1");
  AddService(s, "web.shop", {a.port(), b.port()});
  RetryOnce503(*s.mutable_clusters(0)->mutable_retry());
  StartAgent(s);
  Client c(outbound());
  auto r = c.Get("web.shop", "/status/503");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 503);
  EXPECT_EQ(a.requests() + b.requests(), 2);
  EXPECT_EQ(a.requests(), 1);
}

// An HTTPRoute's retries are the route's own: they override the cluster's (none here).
TEST_F(ProxyTest, ARoutesRetriesOverrideTheClusters) {
  TestUpstream a("a"), b("b");
  v1::Snapshot s = BaseSnapshot("v1");
  AddService(s, "web.shop", {a.port(), b.port()});
  v1::Service& svc = *s.mutable_services(s.services_size() - 1);
  v1::HttpRoute retried = svc.routes(0);
  retried.set_name("retried");
  retried.mutable_match()->set_prefix("/status/503");
  RetryOnce503(*retried.mutable_retry());
  *svc.mutable_routes()->Add() = svc.routes(0);
  *svc.mutable_routes(0) = retried;
  StartAgent(s);
  Client c(outbound());
  auto r = c.Get("web.shop", "/status/503");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 503);
  EXPECT_EQ(a.requests() + b.requests(), 2);
  r = c.Get("web.shop", "/status/502");  // the other route: the cluster's (no) retries
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 502);
  EXPECT_EQ(a.requests() + b.requests(), 3);
}

// A route's fault injection answers instead of the upstream (all of the calls here).
TEST_F(ProxyTest, ARoutesFaultAbortAnswersInsteadOfTheUpstream) {
  const RouteOutcome out = GetWithRoute([](v1::HttpRoute& route) {
    route.mutable_fault()->set_abort_status(418);
    route.mutable_fault()->set_abort_percent(100);
    route.mutable_fault()->mutable_delay()->set_nanos(1'000'000);
    route.mutable_fault()->set_delay_percent(100);
  });
  EXPECT_EQ(out.status, 418u);
  EXPECT_EQ(out.upstream_requests, 0);
}

// An injected delay counts against the route's timeout, as a client's deadline would.
TEST_F(ProxyTest, AFaultDelayCountsAgainstTheRouteTimeout) {
  const RouteOutcome out = GetWithRoute([](v1::HttpRoute& route) {
    route.mutable_fault()->mutable_delay()->set_nanos(300'000'000);
    route.mutable_fault()->set_delay_percent(100);
    route.mutable_timeout()->set_nanos(200'000'000);
  });
  EXPECT_EQ(out.status, 504u);
  EXPECT_EQ(out.upstream_requests, 0);
}

TEST_F(ProxyTest, RefusesMalformedAndOversizedRequests) {
  TestUpstream a("a");
  v1::Snapshot s = BaseSnapshot("v1");
  AddService(s, "web.shop", {a.port()});
  Limits limits;
  limits.max_header_bytes = 1024;
  limits.max_header_count = 10;
  limits.header_read_timeout = 300ms;
  StartAgent(s, limits);
  struct Case {
    std::string request;
    unsigned status;
  };
  std::vector<Case> cases = {
      {"POST / HTTP/1.1\r\nHost: web.shop\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: web.shop\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: web.shop\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: web.shop\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: web.shop\r\nx-big: " + std::string(2000, 'a') + "\r\n\r\n", 431},
      {"GET / HTTP/1.1\r\nHost: web.shop\r\n" + std::string(20 * 7, 'x') + "\r\n\r\n", 400},
      {"GARBAGE\r\n\r\n", 400},
  };
  std::string many;
  for (int i = 0; i < 20; ++i) many += "x-h" + std::to_string(i) + ": 1\r\n";
  cases.push_back({"GET / HTTP/1.1\r\nHost: web.shop\r\n" + many + "\r\n", 431});
  for (const Case& k : cases) {
    Client c(outbound());
    ASSERT_TRUE(c.Send(k.request));
    auto r = c.Read();
    ASSERT_TRUE(r) << k.request;
    EXPECT_EQ(r->result_int(), k.status) << k.request;
    EXPECT_TRUE(c.ClosedByPeer()) << k.request;
  }
  // A client that stops in the middle of its header is disconnected.
  Client slow(outbound());
  ASSERT_TRUE(slow.Send("GET / HTTP/1.1\r\nHost: web"));
  EXPECT_TRUE(slow.ClosedByPeer());
  EXPECT_EQ(a.requests(), 0);
}

// Before the first snapshot, the flags' timeouts hold, not the built-in defaults (10 s to
// read a header, 60 s idle): a silent client is closed by them, inbound by the header
// read's, outbound by the idle one's.
TEST_F(ProxyTest, BeforeAnySnapshotTheFlagsTimeoutsHold) {
  AgentOptions options = LocalAgentOptions(1);
  options.limits.header_read_timeout = 300ms;
  options.limits.downstream_idle_timeout = 3s;
  agent_ = std::make_unique<Agent>(options);
  ASSERT_TRUE(agent_->Start().ok());
  const auto start = std::chrono::steady_clock::now();
  Client inbound(agent_->inbound_port(), 8s);
  Client outbound(agent_->outbound_port(), 8s);
  ASSERT_TRUE(inbound.connected());
  ASSERT_TRUE(outbound.connected());
  EXPECT_TRUE(inbound.ClosedByPeer());
  const auto inbound_closed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(inbound_closed, 300ms);
  EXPECT_LT(inbound_closed, 2s);  // not by the idle timeout
  EXPECT_TRUE(outbound.ClosedByPeer());
  EXPECT_GE(std::chrono::steady_clock::now() - start, 3s);
}

TEST_F(ProxyTest, StreamsChunkedBodiesBothWaysAndAnswers100Continue) {
  TestUpstream a("a");
  StartWebShop(a.port());
  Client c(outbound());
  ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: web.shop\r\nTransfer-Encoding: chunked\r\n"
                     "Expect: 100-continue\r\n\r\n"));
  // The agent says 100 Continue before the body is sent.
  auto interim = c.Read();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->result_int(), 100);
  auto chunk = [](int i) {
    std::string piece(50'000, static_cast<char>('a' + i % 26));
    char size[16];
    std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
    return std::make_pair(piece, size + piece + "\r\n");
  };
  // Each chunk comes back echoed while the request is still open, before the next one is
  // sent: both bodies stream, neither is buffered whole (and no socket buffer needs to
  // hold the whole body for the test to pass).
  http::response_parser<http::string_body> parser;
  parser.body_limit(~uint64_t{0});
  std::string expected;
  for (int i = 0; i < 64; ++i) {
    expected += chunk(i).first;
    ASSERT_TRUE(c.Send(chunk(i).second));
    ASSERT_TRUE(c.ReadInto(parser, [&] { return parser.get().body().size() >= expected.size(); }))
        << "chunk " << i << " was not echoed before the request body ended";
  }
  EXPECT_EQ(parser.get().result_int(), 200);
  EXPECT_TRUE(parser.get().chunked());
  ASSERT_TRUE(c.Send("0\r\n\r\n"));
  ASSERT_TRUE(c.ReadInto(parser, [&] { return parser.is_done(); }));
  EXPECT_EQ(parser.get().body().size(), expected.size());
  EXPECT_TRUE(parser.get().body() == expected);
  // The connection stays usable.
  auto again = c.Get("web.shop", "/");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->body(), "a");
}

TEST_F(ProxyTest, PipelinedRequestsAreAnsweredInOrder) {
  TestUpstream a("a");
  StartWebShop(a.port());
  Client c(outbound());
  std::string three;
  for (int i = 0; i < 3; ++i) {
    three += "GET /status/20" + std::to_string(i) + " HTTP/1.1\r\nHost: web.shop\r\n\r\n";
  }
  ASSERT_TRUE(c.Send(three));
  for (int i = 0; i < 3; ++i) {
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->result_int(), 200 + i);
  }
}

TEST_F(ProxyTest, ExplicitProxyAbsoluteFormTarget) {
  TestUpstream a("a");
  StartWebShop(a.port());
  Client c(outbound());
  ASSERT_TRUE(c.Send("GET http://web.shop/x?y=1 HTTP/1.1\r\nHost: ignored\r\n\r\n"));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200);
  EXPECT_NE(a.last_request_header().find("GET /x?y=1 HTTP/1.1"), std::string::npos);
}

TEST_F(ProxyTest, CircuitBreakerOpensAfterConsecutiveErrors) {
  TestUpstream a("a");
  v1::Snapshot s = BaseSnapshot("v1");
  AddService(s, "web.shop", {a.port()});
  v1::CircuitBreaker* cb = s.mutable_clusters(0)->mutable_circuit_breaker();
  cb->set_consecutive_errors(3);
  cb->mutable_open_duration()->set_seconds(60);
  StartAgent(s);
  Client c(outbound());
  for (int i = 0; i < 3; ++i) {
    auto r = c.Get("web.shop", "/status/500");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->result_int(), 500);
  }
  auto r = c.Get("web.shop", "/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 503);
  EXPECT_EQ(a.requests(), 3);
}

TEST_F(ProxyTest, AccessLogLinesOnlyWhenTheSnapshotAsksForThem) {
  TestUpstream a("a");
  StartWebShop(a.port());
  Client c(outbound());
  EXPECT_EQ(StatusOf(c.Get("web.shop", "/")), 200u);
  // Off by default: the metrics count it, the access log stays empty.
  ASSERT_TRUE(WaitFor([&] { return Counter("meshplug_http_requests_total",
                                            {{"direction", "outbound"}, {"dst_service", "web"}, {"dst_namespace", "shop"}, {"code", "200"}}) == 1; }));
  EXPECT_TRUE(AccessLog().empty());

  v1::Snapshot on = BaseSnapshot("v2");
  AddService(on, "web.shop", {a.port()});
  on.mutable_settings()->set_access_log(true);
  ASSERT_TRUE(agent_->Apply(std::move(on)).ok());
  EXPECT_EQ(StatusOf(c.Get("web.shop", "/items?x=1")), 200u);
  ASSERT_TRUE(WaitFor([&] { return AccessLog().size() == 1; }));
  const std::string line = AccessLog().front();
  EXPECT_NE(line.find("\"direction\":\"outbound\",\"method\":\"GET\",\"target\":\"/items?x=1\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"status\":200"), std::string::npos) << line;
  EXPECT_NE(line.find("\"service\":\"web.shop\""), std::string::npos) << line;
}

TEST_F(ProxyTest, InboundThrottleAnswers429) {
  TestUpstream app("app");
  v1::Snapshot s = BaseSnapshot("v1");
  v1::Service& svc = AddService(s, "httpbin.httpbin", {app.port()}, true);
  svc.mutable_traffic()->mutable_rate_limit()->set_requests(2);
  svc.mutable_traffic()->mutable_rate_limit()->mutable_per()->set_seconds(3600);
  StartAgent(s);
  Client c(agent_->inbound_port());
  EXPECT_EQ(StatusOf(c.Get("httpbin.httpbin", "/")), 200u);
  EXPECT_EQ(StatusOf(c.Get("httpbin.httpbin", "/")), 200u);
  EXPECT_EQ(StatusOf(c.Get("httpbin.httpbin", "/")), 429u);
  // The metrics module counts in its log step, after the response went out.
  EXPECT_TRUE(WaitFor([&] {
    return agent_->stats().CounterValue(
               "meshplug_http_requests_total",
               {{"direction", "inbound"}, {"dst_service", "httpbin"}, {"dst_namespace", "httpbin"}, {"code", "429"}}) == 1;
  }));
  // Which plugin answered, and with what.
  EXPECT_EQ(Counter("meshplug_plugin_responses_total",
                    {{"chain", "inbound-http"}, {"plugin", "throttle-service"}, {"code", "429"}}),
            1u);
}

// The golden metrics name who called whom: this workload, the routed service and the
// endpoint's workload; each plugin's step time is recorded.
TEST_F(ProxyTest, RequestMetricsNameSourceDestinationAndRoute) {
  TestUpstream app("app");
  v1::Snapshot s = BaseSnapshot("v1");
  v1::Workload* self = s.mutable_settings()->mutable_workload();
  self->set_name("curl-1");
  self->set_namespace_("curl");
  self->set_service_account("curl");
  AddService(s, "httpbin.httpbin", {app.port()});
  s.mutable_endpoints(0)->mutable_endpoints(0)->set_workload("httpbin-1.httpbin");
  StartAgent(s);
  Client c(outbound());
  EXPECT_EQ(StatusOf(c.Get("httpbin.httpbin", "/")), 200u);  // body "app"
  ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: httpbin.httpbin\r\nContent-Length: 5\r\n\r\nhello"));
  auto echoed = c.Read();
  ASSERT_TRUE(echoed);
  EXPECT_EQ(echoed->body(), "hello");
  ASSERT_TRUE(WaitFor([&] {
    return Counter("meshplug_http_requests_total", {{"direction", "outbound"},
                                                    {"src_namespace", "curl"},
                                                    {"src_workload", "curl-1"},
                                                    {"src_service_account", "curl"},
                                                    {"dst_namespace", "httpbin"},
                                                    {"dst_service", "httpbin"},
                                                    {"dst_workload", "httpbin-1"},
                                                    {"route", "default"},
                                                    {"code", "200"}}) == 2;
  }));
  // Body bytes as they went out: 5 to the upstream, "app" and "hello" to the client.
  const Stats::Labels to_httpbin = {{"src_workload", "curl-1"}, {"dst_workload", "httpbin-1"}, {"route", "default"}};
  EXPECT_EQ(Counter("meshplug_http_request_bytes_total", to_httpbin), 5u);
  EXPECT_EQ(Counter("meshplug_http_response_bytes_total", to_httpbin), 8u);
  const std::string text = agent_->RenderStats();
  EXPECT_NE(text.find("meshplug_plugin_duration_seconds_count{chain=\"outbound-http\",plugin=\"http-routing\","
                      "step=\"request\"} 2\n"),
            std::string::npos)
      << text;
  // A module that only observes has no header steps to time; routing has no response step.
  EXPECT_EQ(text.find("meshplug_plugin_duration_seconds_count{chain=\"outbound-http\",plugin=\"metrics\""),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("meshplug_plugin_duration_seconds_count{chain=\"outbound-http\",plugin=\"http-routing\","
                      "step=\"response\"}"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("meshplug_http_request_duration_seconds_count{direction=\"outbound\",src_namespace=\"curl\""),
            std::string::npos);
}

TEST_F(ProxyTest, OutboundThroughInboundToTheApp) {
  TestUpstream app("app");
  // One agent plays both sides: its outbound cluster's endpoint is its own inbound listener.
  const uint16_t inbound = testing::FreePort();
  v1::Snapshot s = BaseSnapshot("v1");
  AddService(s, "httpbin.httpbin", {inbound});
  AddService(s, "httpbin.httpbin", {app.port()}, true);
  // Two services of one name (outbound and inbound) must differ by name.
  s.mutable_services(1)->set_name("httpbin.httpbin.local");
  AgentOptions options = LocalAgentOptions(1);
  options.inbound_port = inbound;
  agent_ = std::make_unique<Agent>(options);
  ASSERT_TRUE(agent_->Apply(s).ok());
  ASSERT_TRUE(agent_->Start().ok());
  Client c(agent_->outbound_port());
  auto r = c.Get("httpbin.httpbin:80", "/get");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200);
  EXPECT_EQ(r->body(), "app");
}

// WebSocket through the agent: the handshake goes through the http chain, the upstream's
// 101 comes back, then bytes go both ways (those the client sent early included) with
// half-close. An upgrade to h2c is never made: that request goes as a plain one.
TEST_F(ProxyTest, UpgradedConnectionsAreRelayedByteForByte) {
  testing::UpgradeEcho ws;
  RawUpstream upstream(ws.handler());
  StartWebShop(upstream.port());
  Client c(outbound());
  ASSERT_TRUE(c.Send("GET /chat HTTP/1.1\r\nHost: web.shop\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nearly "));
  auto r = c.Read();
  ASSERT_TRUE(r) << c.last_error().message();
  EXPECT_EQ(r->result_int(), 101);
  EXPECT_EQ((*r)[http::field::upgrade], "websocket");
  EXPECT_EQ((*r)[http::field::connection], "Upgrade");
  ASSERT_TRUE(c.Send("frames"));
  EXPECT_EQ(c.EndAndReadToEnd(), "ws:early frames");
  const std::string seen = ws.last_header();
  EXPECT_NE(seen.find("Connection: Upgrade\r\n"), std::string::npos) << seen;
  EXPECT_NE(seen.find("Upgrade: websocket\r\n"), std::string::npos) << seen;
  EXPECT_NE(seen.find("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"), std::string::npos) << seen;

  Client h2c(outbound());
  auto plain = h2c.Get("web.shop", "/", "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->result_int(), 200);
  EXPECT_EQ(plain->body(), "plain");
  EXPECT_EQ(ws.last_header().find("h2c"), std::string::npos) << ws.last_header();
}

// A 101 the request did not ask for (or to another protocol) is a broken response: 502,
// and the connection is never read as HTTP again.
TEST_F(ProxyTest, ASwitchOfProtocolsNobodyAskedForIsRefused) {
  RawUpstream upstream([](tcp::socket& socket, int) -> asio::awaitable<void> {
    std::string pending;
    if ((co_await ReadRequestHeader(socket, pending)).empty()) co_return;
    co_await WriteAll(socket, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                              "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled");
    co_await DrainUntilClosed(socket);
  });
  StartWebShop(upstream.port());
  Client plain(outbound());
  auto r = plain.Get("web.shop", "/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 502);
  Client other(outbound());
  ASSERT_TRUE(other.Send("GET / HTTP/1.1\r\nHost: web.shop\r\nConnection: Upgrade\r\nUpgrade: irc\r\n\r\n"));
  r = other.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 502);
  EXPECT_NE(r->body().find("did not ask for"), std::string::npos) << r->body();
}

TEST_F(ProxyTest, TcpProxyingWithHalfClose) {
  EXPECT_EQ(ThroughTcpEcho("127.0.0.1", {"hello ", "world"}), "echo:hello world");
  // Counted once the relay ended: one connection, 11 bytes in and 16 out.
  const Stats::Labels to_db = {{"direction", "outbound"}, {"dst_service", "db"}, {"dst_namespace", "data"}};
  EXPECT_TRUE(WaitFor([&] { return Counter("meshplug_tcp_sent_bytes_total", to_db) == 16; }));
  EXPECT_EQ(Counter("meshplug_tcp_connections_total", to_db), 1u);
  EXPECT_EQ(Counter("meshplug_tcp_received_bytes_total", to_db), 11u);
}

// A chunk-size line (or trailer) without CRLF must not grow the read buffer
// without limit; past header limit + one body piece the request is refused.
TEST_F(ProxyTest, EndlessChunkLineIsRefusedNotBuffered) {
  // An upstream that never answers: only the agent's own limit can end the request.
  RawUpstream silent([](tcp::socket& socket, int) -> asio::awaitable<void> {
    co_await DrainUntilClosed(socket);
  });
  v1::Snapshot s = BaseSnapshot("v1");
  AddService(s, "web.shop", {silent.port()});
  StartAgent(s);
  Client c(outbound(), 5s);
  ASSERT_TRUE(c.Send("POST / HTTP/1.1\r\nHost: web.shop\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5;ext="));
  ASSERT_TRUE(c.Send(std::string(256 * 1024, 'x')));
  auto r = c.Read();
  ASSERT_TRUE(r) << c.last_error().message();
  EXPECT_EQ(r->result_int(), 400);
  EXPECT_TRUE(c.ClosedByPeer());
}

// Framing lines end in CRLF. A bare LF in the header, a chunk-size line or the trailers
// is answered 400 at once, well within the client's 5 s: the agent's timeouts (10 s for a
// header, 60 s idle by default) are not what ends it.
TEST_F(ProxyTest, BareLfInRequestFramingIsRefusedAtOnce) {
  // An upstream that reads and never answers: only the agent can end these requests.
  RawUpstream silent([](tcp::socket& socket, int) -> asio::awaitable<void> {
    co_await DrainUntilClosed(socket);
  });
  TestUpstream echo("echo");
  v1::Snapshot s = BaseSnapshot("v1");
  AddService(s, "web.shop", {silent.port()});
  AddService(s, "echo.shop", {echo.port()});
  StartAgent(s);
  auto chunked = [](const std::string& host) {
    return "POST /echo HTTP/1.1\r\nHost: " + host + "\r\nTransfer-Encoding: chunked\r\n\r\n";
  };
  for (const std::string& request : {
           std::string("GET / HTTP/1.1\nHost: web.shop\n\n"),
           std::string("GET / HTTP/1.1\r\nHost: web.shop\nx-a: 1\r\n\r\n"),
           chunked("web.shop") + "5\nhello\n0\n\n",
           chunked("web.shop") + "5\r\nhello\r\n0\n\n",
           chunked("web.shop") + "5;ext=1\nhello\r\n0\r\n\r\n",
           chunked("web.shop") + "5\r\nhello\r\n0\r\nx-trailer: 1\n\r\n",
       }) {
    Client c(outbound(), 5s);
    ASSERT_TRUE(c.Send(request));
    auto r = c.Read();
    ASSERT_TRUE(r) << request << ": " << c.last_error().message();
    EXPECT_EQ(r->result_int(), 400) << request;
    EXPECT_TRUE(c.ClosedByPeer()) << request;
  }
  // An upstream that answered before the body broke: the response already started can
  // only be cut short, and is, at once.
  {
    Client c(outbound(), 5s);
    ASSERT_TRUE(c.Send(chunked("echo.shop") + "5\r\nhello\r\n"));
    http::response_parser<http::string_body> parser;
    // The echo of the first chunk proves the response started before the body broke.
    ASSERT_TRUE(c.ReadInto(parser, [&] { return parser.get().body() == "hello"; }));
    ASSERT_TRUE(c.Send("5\nworld\n0\n\n"));
    EXPECT_FALSE(c.ReadInto(parser, [&] { return parser.is_done(); }));
    EXPECT_NE(c.last_error(), beast::error::timeout) << c.last_error().message();
  }
  // An LF inside a body is data.
  Client c(outbound(), 5s);
  ASSERT_TRUE(c.Send(chunked("echo.shop") + "5\r\nhe\nlo\r\n0\r\n\r\n"));
  auto r = c.Read();
  ASSERT_TRUE(r) << c.last_error().message();
  EXPECT_EQ(r->result_int(), 200);
  EXPECT_EQ(r->body(), "he\nlo");
}

TEST_F(ProxyTest, BareLfInResponseFramingFailsTheResponseAtOnce) {
  RawUpstream upstream([](tcp::socket& socket, int) -> asio::awaitable<void> {
    std::string pending;
    const std::string header = co_await ReadRequestHeader(socket, pending);
    if (header.find("/header") != std::string::npos) {
      co_await WriteAll(socket, "HTTP/1.1 200 OK\nContent-Length: 2\n\nok");
    } else {
      co_await WriteAll(socket, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\n0\n\n");
    }
    co_await HoldForever(socket);
  });
  v1::Snapshot s = BaseSnapshot("v1");
  AddService(s, "web.shop", {upstream.port()});
  StartAgent(s);
  Client c(outbound(), 5s);
  auto r = c.Get("web.shop", "/header");
  ASSERT_TRUE(r) << c.last_error().message();
  EXPECT_EQ(r->result_int(), 502);
  // The header went out before the body's framing broke: the response is cut short.
  Client d(outbound(), 5s);
  EXPECT_FALSE(d.Get("web.shop", "/chunked"));
  EXPECT_NE(d.last_error(), beast::error::timeout) << d.last_error().message();
}

TEST_F(ProxyTest, EndlessUpstreamChunkLineEndsTheResponse) {
  RawUpstream endless([](tcp::socket& socket, int) -> asio::awaitable<void> {
    std::string pending;
    if ((co_await ReadRequestHeader(socket, pending)).empty()) co_return;
    co_await WriteAll(socket, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=" +
                                  std::string(256 * 1024, 'x'));
    co_await HoldForever(socket);
  });
  v1::Snapshot s = BaseSnapshot("v1");
  AddService(s, "web.shop", {endless.port()});
  StartAgent(s);
  Client c(outbound(), 5s);
  auto r = c.Get("web.shop", "/");
  // The header went out before the body broke: the agent can only cut the response
  // short, and must do so instead of buffering and waiting.
  EXPECT_FALSE(r);
  EXPECT_NE(c.last_error(), beast::error::timeout) << c.last_error().message();
}

// Bytes an upstream sent after its response must not be read as the response
// to the next request on a pooled connection.
TEST_F(ProxyTest, BytesAfterAResponseNeverReachTheNextRequest) {
  RawUpstream smuggler([](tcp::socket& socket, int) -> asio::awaitable<void> {
    std::string pending;
    while (true) {
      const std::string header = co_await ReadRequestHeader(socket, pending);
      if (header.empty()) break;
      // One write: the agent reads the extra response together with the real one.
      const bool ok = co_await WriteAll(socket,
                                        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
                                        "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nx-smuggled: 1\r\n\r\nevil");
      if (!ok) co_return;
    }
  });
  v1::Snapshot s = BaseSnapshot("v1");
  AddService(s, "web.shop", {smuggler.port()});
  StartAgent(s);
  Client c(outbound());
  for (int i = 0; i < 2; ++i) {
    auto r = c.Get("web.shop", "/");
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->body(), "a") << i;
    EXPECT_EQ(r->count("x-smuggled"), 0u) << i;
  }
  EXPECT_EQ(smuggler.connections(), 2);
}

// However the upstream frames a response (its body in the header's segment or after it,
// chunked with or without data, an empty body, none for HEAD), the client gets it whole
// and both kept-alive connections stay in step for the next request.
TEST_F(ProxyTest, EveryResponseFramingArrivesWholeOnKeptAliveConnections) {
  RawUpstream upstream([](tcp::socket& socket, int) -> asio::awaitable<void> {
    std::string pending;
    for (;;) {
      const std::string head = co_await ReadRequestHeader(socket, pending);
      if (head.empty()) co_return;
      auto is = [&](const char* path) { return head.find(std::string(" ") + path + " ") != std::string::npos; };
      bool ok = true;
      if (is("/same-segment")) {
        ok = co_await WriteAll(socket, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
      } else if (is("/later")) {
        ok = co_await WriteAll(socket, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n") &&
             co_await WriteAll(socket, "later");
      } else if (is("/chunked-empty")) {
        ok = co_await WriteAll(socket, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
      } else if (is("/chunked")) {
        ok = co_await WriteAll(socket, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
      } else if (is("/empty")) {
        ok = co_await WriteAll(socket, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
      } else {  // HEAD /head: a length, no body
        ok = co_await WriteAll(socket, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
      }
      if (!ok) co_return;
    }
  });
  v1::Snapshot s = BaseSnapshot("v1");
  AddService(s, "web.shop", {upstream.port()});
  StartAgent(s);
  Client c(outbound());
  const std::pair<const char*, const char*> cases[] = {
      {"/same-segment", "hello"}, {"/later", "later"}, {"/chunked-empty", ""},
      {"/chunked", "abc"},        {"/empty", ""},      {"/same-segment", "hello"},
  };
  for (const auto& [path, body] : cases) {
    auto r = c.Get("web.shop", path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->result_int(), 200) << path;
    EXPECT_EQ(r->body(), body) << path;
  }
  ASSERT_TRUE(c.Send("HEAD /head HTTP/1.1\r\nHost: web.shop\r\n\r\n"));
  auto head = c.Read(/*head=*/true);
  ASSERT_TRUE(head);
  EXPECT_EQ((*head)[http::field::content_length], "5");
  auto after = c.Get("web.shop", "/same-segment");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->body(), "hello");
  EXPECT_EQ(upstream.connections(), 1);
}

TEST(UpstreamPoolTest, ClosesIdleConnectionsAndForgetsEmptyEndpoints) {
  TestUpstream a("a");
  asio::io_context context;
  net::UpstreamPool pool(context.get_executor());
  auto acquire = [&](std::chrono::milliseconds idle_timeout) {
    std::unique_ptr<net::UpstreamConnection> c;
    bool done = false;
    asio::co_spawn(
        context,
        [&]() -> asio::awaitable<void> {
          beast::error_code ec;
          net::Acquired acquired = pool.Acquire("127.0.0.1", a.port(), 2s, idle_timeout, net::Reuse::kChecked, ec);
          c = std::move(acquired.idle);
          if (acquired.connect) c = co_await std::move(*acquired.connect);
          done = true;
        },
        asio::detached);
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!done && std::chrono::steady_clock::now() < deadline) {
      context.restart();  // run_for returns at once after the context ran out of work
      context.run_for(10ms);
    }
    return c;
  };
  // A connection with unparsed bytes is never kept.
  std::unique_ptr<net::UpstreamConnection> dirty = acquire(60s);
  ASSERT_TRUE(dirty);
  dirty->buffer.commit(asio::buffer_copy(dirty->buffer.prepare(4), asio::buffer("HTTP", 4)));
  pool.Release(std::move(dirty));
  EXPECT_EQ(pool.idle(), 0u);
  // A clean one is kept for its idle timeout, then closed, its endpoint forgotten.
  std::unique_ptr<net::UpstreamConnection> clean = acquire(100ms);
  ASSERT_TRUE(clean);
  pool.Release(std::move(clean));
  EXPECT_EQ(pool.idle(), 1u);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while ((pool.idle() > 0 || pool.endpoints() > 0) && std::chrono::steady_clock::now() < deadline) {
    context.restart();
    context.run_for(10ms);
  }
  EXPECT_EQ(pool.idle(), 0u);
  EXPECT_EQ(pool.endpoints(), 0u);
  EXPECT_TRUE(WaitFor([&] { return a.open_connections() == 0; }));
}

// A pooled connection the peer has closed: a request that cannot be sent again has its
// socket checked and gets a new connection; one that can is given the connection as it is
// (its failed attempt finds out, and DropClosed clears the endpoint's other closed ones).
TEST(UpstreamPoolTest, ConnectionsClosedByThePeer) {
  asio::io_context context;
  tcp::acceptor acceptor(context, {asio::ip::make_address("127.0.0.1"), 0});
  net::UpstreamPool pool(context.get_executor());
  auto run_until = [&](const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      context.restart();
      context.run_for(5ms);
    }
    return done();
  };
  // A connection from the pool; a new one is accepted into `server`.
  auto connect = [&](net::Reuse reuse, bool& reused, tcp::socket* server) {
    std::unique_ptr<net::UpstreamConnection> c;
    bool done = false;
    asio::co_spawn(
        context,
        [&]() -> asio::awaitable<void> {
          beast::error_code ec;
          net::Acquired acquired = pool.Acquire("127.0.0.1", acceptor.local_endpoint().port(), 2s, 60s, reuse, ec);
          reused = acquired.idle != nullptr;
          c = std::move(acquired.idle);
          if (acquired.connect) c = co_await std::move(*acquired.connect);
          done = true;
        },
        asio::detached);
    if (server) acceptor.async_accept(*server, [](beast::error_code) {});
    EXPECT_TRUE(run_until([&] { return done && (!server || server->is_open()); }));
    return c;
  };
  auto peer_closed = [](net::UpstreamConnection& c) {
    char byte;
    return ::recv(c.stream.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
  };

  bool reused = false;
  tcp::socket first(context), second(context), third(context);
  std::unique_ptr<net::UpstreamConnection> c = connect(net::Reuse::kNone, reused, &first);
  ASSERT_TRUE(c);
  first.close();
  ASSERT_TRUE(run_until([&] { return peer_closed(*c); }));
  pool.Release(std::move(c));
  c = connect(net::Reuse::kChecked, reused, &second);  // checked: a new one
  ASSERT_TRUE(c);
  EXPECT_FALSE(reused);
  pool.Release(std::move(c));

  std::unique_ptr<net::UpstreamConnection> closed = connect(net::Reuse::kNone, reused, &third);
  ASSERT_TRUE(closed);
  const std::string key = closed->key;
  third.close();
  ASSERT_TRUE(run_until([&] { return peer_closed(*closed); }));
  pool.Release(std::move(closed));
  EXPECT_EQ(pool.idle(), 2u);
  closed = connect(net::Reuse::kAsIs, reused, nullptr);  // as it is: the latest, closed
  ASSERT_TRUE(closed);
  EXPECT_TRUE(reused);
  EXPECT_TRUE(peer_closed(*closed));
  pool.DropClosed(key);
  EXPECT_EQ(pool.idle(), 1u);  // the open one stays
  second.close();
  EXPECT_TRUE(run_until([&] {
    pool.DropClosed(key);
    return pool.idle() == 0;
  }));
}

// Routes match the normalized path, and the upstream gets that same path.
TEST_F(ProxyTest, RoutesAndForwardsTheNormalizedPath) {
  TestUpstream a("a");
  v1::Snapshot s = BaseSnapshot("v1");
  v1::Service& svc = AddService(s, "web.shop", {a.port()});
  svc.mutable_routes(0)->mutable_match()->set_prefix("/public/");  // nothing else routes
  StartAgent(s);
  struct Case {
    std::string target;
    unsigned status;
    std::string forwarded;  // the request line the upstream sees, when it sees one
  };
  std::vector<Case> cases = {
      {"/public/../admin", 403, ""},
      {"/public/%2e%2e/admin", 403, ""},
      {"/public/%2E./admin", 403, ""},
      {"/public/..%2fadmin", 400, ""},
      {"/public/..%2Fadmin", 400, ""},
      {"/public/..%5cadmin", 400, ""},
      {"/public/..\\admin", 400, ""},
      {"/public/%zz", 400, ""},
      {"/public/a/./b/../c?x=../y", 200, "GET /public/a/c?x=../y HTTP/1.1"},
      {"/public/%7euser/%3a", 200, "GET /public/~user/%3A HTTP/1.1"},
      {"http://web.shop/public/x/../y", 200, "GET /public/y HTTP/1.1"},
      {"*", 400, ""},
      {"web.shop:80", 400, ""},
  };
  for (const Case& k : cases) {
    Client c(outbound());
    ASSERT_TRUE(c.Send("GET " + k.target + " HTTP/1.1\r\nHost: web.shop\r\n\r\n"));
    auto r = c.Read();
    ASSERT_TRUE(r) << k.target;
    EXPECT_EQ(r->result_int(), k.status) << k.target;
    if (!k.forwarded.empty()) {
      EXPECT_EQ(a.last_request_header().find(k.forwarded), 0u)
          << k.target << " arrived as " << a.last_request_header();
    }
  }
  EXPECT_EQ(a.requests(), 3);
}

// Whatever a plugin throws or answers, the client gets a well-formed response
// with nothing of the exception, the failure is counted and the log steps still run.
TEST_F(ProxyTest, PluginFailuresAndBadStatusesBecome500WithoutDetails) {
  // Never answers, so the body step's failure is the only possible outcome.
  RawUpstream silent([](tcp::socket& socket, int) -> asio::awaitable<void> {
    co_await DrainUntilClosed(socket);
  });
  StartWithActionPlugin(silent.port());
  int logged_before = ActionPlugin::logged.load();
  std::vector<std::string> requests = {
      "GET / HTTP/1.1\r\nHost: web.shop\r\nx-plugin-action: throw-headers\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: web.shop\r\nx-plugin-action: throw-body\r\n"
      "Content-Length: 5\r\n\r\nhello",
      "GET / HTTP/1.1\r\nHost: web.shop\r\nx-plugin-action: status:1000\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: web.shop\r\nx-plugin-action: status:42\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: web.shop\r\nx-plugin-action: status:101\r\n\r\n",
  };
  for (const std::string& request : requests) {
    Client c(outbound(), 5s);
    ASSERT_TRUE(c.Send(request));
    auto r = c.Read();
    ASSERT_TRUE(r) << request << c.last_error().message();
    EXPECT_EQ(r->result_int(), 500) << request;
    EXPECT_EQ(r->body().find("secret"), std::string::npos) << r->body();
  }
  EXPECT_EQ(Counter("meshplug_plugin_errors_total", {{"plugin", "action"}}), 2u);
  EXPECT_TRUE(WaitFor([&] {
    return ActionPlugin::logged.load() - logged_before == static_cast<int>(requests.size());
  }));
}

TEST_F(ProxyTest, LocalNoContentResponsesCarryNoBody) {
  TestUpstream a("a");
  StartWithActionPlugin(a.port());
  Client c(outbound());
  for (unsigned status : {204u, 304u}) {
    auto r = c.Get("web.shop", "/", "x-plugin-action: status:" + std::to_string(status) + "\r\n");
    ASSERT_TRUE(r) << status;
    EXPECT_EQ(r->result_int(), status);
    EXPECT_EQ(r->count(http::field::content_length), 0u);
    // A body would be read as the start of the next response.
    auto next = c.Get("web.shop", "/");
    ASSERT_TRUE(next) << status;
    EXPECT_EQ(next->result_int(), 200);
    EXPECT_EQ(next->body(), "a");
  }
}

// Plugins' own HTTP calls (Lua http_call) keep connections in the worker's pool.
TEST_F(ProxyTest, PluginsGetTheWorkersPool) {
  TestUpstream a("a");
  StartWithActionPlugin(a.port());
  Client c(outbound());
  auto r = c.Get("web.shop", "/", "x-plugin-action: has-pool\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200);
}

// TCP connections are closed when idle, bounded after a half-close, and
// endpoints may be DNS names (the pool's connect).
TEST_F(ProxyTest, IdleTcpConnectionsAreClosed) {
  TcpEchoUpstream echo("echo:");
  uint16_t listen_port = FreePort();
  Limits limits;
  limits.tcp_idle_timeout = 200ms;
  StartAgent(TcpSnapshot("127.0.0.1", echo.port(), listen_port), limits);
  Client c(listen_port, 5s);
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send("hello"));
  EXPECT_TRUE(c.ClosedByPeer());
}

TEST_F(ProxyTest, HalfClosedTcpConnectionsAreBounded) {
  // Reads the request to its end, then neither answers nor closes.
  RawUpstream mute([](tcp::socket& socket, int) -> asio::awaitable<void> {
    co_await DrainUntilClosed(socket);
    co_await HoldForever(socket);
  });
  uint16_t listen_port = FreePort();
  Limits limits;
  limits.tcp_half_close_timeout = 200ms;
  StartAgent(TcpSnapshot("127.0.0.1", mute.port(), listen_port), limits);
  Client c(listen_port, 5s);
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send("request"));
  boost::system::error_code ec;
  c.stream().socket().shutdown(tcp::socket::shutdown_send, ec);
  EXPECT_TRUE(c.ClosedByPeer());
}

TEST_F(ProxyTest, TcpEndpointsMayBeHostNames) {
  EXPECT_EQ(ThroughTcpEcho("localhost", {"by name"}), "echo:by name");
}

// An upstream that answers before reading the request body gets its answer
// relayed; the agent does not insist on sending the whole body first.
TEST_F(ProxyTest, EarlyResponseIsRelayedWhileTheRequestBodyIsPending) {
  RawUpstream early([](tcp::socket& socket, int) -> asio::awaitable<void> {
    std::string pending;
    if ((co_await ReadRequestHeader(socket, pending)).empty()) co_return;
    co_await WriteAll(socket, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n\r\nbig!");
    co_await HoldForever(socket);  // reads no body, never closes
  });
  v1::Snapshot s = BaseSnapshot("v1");
  AddService(s, "web.shop", {early.port()});
  StartAgent(s);
  Client c(outbound(), 5s);
  ASSERT_TRUE(c.Send("POST /upload HTTP/1.1\r\nHost: web.shop\r\nContent-Length: 1000000\r\n\r\n" +
                     std::string(1000, 'b')));
  auto r = c.Read();
  ASSERT_TRUE(r) << c.last_error().message();
  EXPECT_EQ(r->result_int(), 413);
  EXPECT_EQ(r->body(), "big!");
  // The rest of the body will never be read: the connection ends after the response.
  EXPECT_TRUE(c.ClosedByPeer());
}

// Through upstreams whose first connection answers one request and ends on the next
// (writing `farewell` first, if any): a GET goes again once, on a new connection, and
// counts as a stale-connection retry; a POST is not sent twice (the upstream may have
// acted on it) and gets `post_status`.
class StaleConnectionTest : public ProxyTest {
 protected:
  void ExpectOneResendOfIdempotentRequests(std::string farewell, unsigned post_status);
};

void StaleConnectionTest::ExpectOneResendOfIdempotentRequests(std::string farewell, unsigned post_status) {
  auto ends_second = [farewell](tcp::socket& socket, int connection) -> asio::awaitable<void> {
    std::string pending;
    for (int i = 0;; ++i) {
      if ((co_await ReadRequestHeader(socket, pending)).empty()) co_return;
      if (connection == 0 && i == 1) {
        if (!farewell.empty()) co_await WriteAll(socket, farewell);
        co_return;
      }
      if (!co_await WriteAll(socket, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")) co_return;
    }
  };
  RawUpstream get_upstream(ends_second), post_upstream(ends_second);
  v1::Snapshot s = BaseSnapshot("v1");
  AddService(s, "web.shop", {get_upstream.port()});
  AddService(s, "post.shop", {post_upstream.port()});
  StartAgent(s);
  Client c(outbound());
  EXPECT_EQ(StatusOf(c.Get("web.shop", "/")), 200u);
  EXPECT_EQ(StatusOf(c.Get("web.shop", "/")), 200u);
  EXPECT_EQ(get_upstream.connections(), 2);
  EXPECT_EQ(Counter("meshplug_upstream_stale_connection_retries_total", {{"cluster", "web.shop|80"}}), 1u);
  Client p(outbound());
  for (unsigned expected : {200u, post_status}) {
    ASSERT_TRUE(p.Send("POST / HTTP/1.1\r\nHost: post.shop\r\nContent-Length: 0\r\n\r\n"));
    EXPECT_EQ(StatusOf(p.Read()), expected);
  }
  EXPECT_EQ(post_upstream.connections(), 1);
}

// A pooled connection the upstream closed as the request arrived.
TEST_F(StaleConnectionTest, APooledConnectionClosedAsTheRequestArrived) {
  ExpectOneResendOfIdempotentRequests("", 502);
}

// A 408 on a pooled connection: a server saying goodbye to it as the request arrived.
TEST_F(StaleConnectionTest, A408OnAPooledConnection) {
  ExpectOneResendOfIdempotentRequests(
      "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 408);
}

// Every Connection field names hop-by-hop fields and can say close, and the
// names come from the request as it arrived, whatever plugins do to it.
TEST_F(ProxyTest, EveryConnectionFieldCounts) {
  TestUpstream a("a");
  StartWithActionPlugin(a.port());
  {
    Client c(outbound());
    auto r = c.Get("web.shop", "/",
                   "Connection: keep-alive\r\nConnection: x-secret\r\nx-secret: 1\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(a.last_request_header().find("x-secret"), std::string::npos)
        << a.last_request_header();
    r = c.Get("web.shop", "/",
              "Connection: x-other\r\nx-other: 1\r\nx-plugin-action: drop-connection\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(a.last_request_header().find("x-other"), std::string::npos)
        << a.last_request_header();
  }
  Client c(outbound());
  auto r = c.Get("web.shop", "/", "Connection: x-a\r\nConnection: close\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[http::field::connection], "close");
  EXPECT_TRUE(c.ClosedByPeer());
}

// RFC 9112 §3.2.
TEST_F(ProxyTest, HostMustBePresentOnceAndValid) {
  TestUpstream a("a");
  StartWebShop(a.port());
  for (const std::string& request : {
           std::string("GET / HTTP/1.1\r\n\r\n"),
           std::string("GET / HTTP/1.1\r\nHost: web.shop\r\nHost: other.shop\r\n\r\n"),
           std::string("GET / HTTP/1.1\r\nHost: web.shop/x\r\n\r\n"),
           std::string("GET / HTTP/1.1\r\nHost: user@web.shop\r\n\r\n"),
       }) {
    Client c(outbound());
    ASSERT_TRUE(c.Send(request));
    EXPECT_EQ(StatusOf(c.Read()), 400u) << request;
  }
  EXPECT_EQ(a.requests(), 0);
}

// Only "chunked" is forwarded: other request codings are 501, other response
// codings 502 (re-framing would drop them).
TEST_F(ProxyTest, TransferCodingsOtherThanChunkedAreRefused) {
  RawUpstream gzip([](tcp::socket& socket, int) -> asio::awaitable<void> {
    std::string pending;
    if ((co_await ReadRequestHeader(socket, pending)).empty()) co_return;
    co_await WriteAll(socket,
                      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    co_await DrainUntilClosed(socket);
  });
  v1::Snapshot s = BaseSnapshot("v1");
  AddService(s, "web.shop", {gzip.port()});
  StartAgent(s);
  {
    Client c(outbound());
    ASSERT_TRUE(c.Send("POST / HTTP/1.1\r\nHost: web.shop\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                       "3\r\nabc\r\n0\r\n\r\n"));
    EXPECT_EQ(StatusOf(c.Read()), 501u);
  }
  EXPECT_EQ(gzip.connections(), 0);
  Client c(outbound());
  EXPECT_EQ(StatusOf(c.Get("web.shop", "/")), 502u);
}

// A request takes its limits from the chain set it runs on, even when that set
// arrived while its connection was idle.
TEST_F(ProxyTest, RequestTakesItsLimitsFromItsOwnChainSet) {
  TestUpstream a("a");
  v1::Snapshot s = BaseSnapshot("v1");
  AddService(s, "web.shop", {a.port()});
  StartAgent(s);
  Client c(outbound());
  EXPECT_EQ(StatusOf(c.Get("web.shop", "/")), 200u);
  // The first request is over (logged) and the connection waits for the next one.
  ASSERT_TRUE(WaitFor([&] {
    return Counter("meshplug_http_requests_total",
                   {{"direction", "outbound"}, {"dst_service", "web"}, {"dst_namespace", "shop"}, {"code", "200"}}) == 1;
  }));
  v1::Snapshot smaller = s;
  smaller.set_version("v2");
  smaller.mutable_settings()->mutable_limits()->set_max_header_bytes(1024);
  ASSERT_TRUE(agent_->Apply(smaller).ok());
  EXPECT_EQ(StatusOf(c.Get("web.shop", "/", "x-big: " + std::string(2000, 'a') + "\r\n")), 431u);
}

}  // namespace
}  // namespace meshplug::agent::proxy
