// The agent end to end in-process: real listeners, real upstream servers, real sockets.
#include <gtest/gtest.h>

#include <map>
#include <memory>

#include "agent/agent.h"
#include "agent/test_support.h"

namespace meshplug::agent {
namespace {

using namespace std::chrono_literals;
using testing::AddService;
using testing::BaseSnapshot;
using testing::Client;
using testing::TcpEchoUpstream;
using testing::TestUpstream;
using testing::WaitFor;

class ProxyTest : public ::testing::Test {
 protected:
  void StartAgent(v1::Snapshot snapshot, Limits limits = {}) {
    AgentOptions options;
    options.bind_address = "127.0.0.1";
    options.outbound_port = options.inbound_port = options.admin_port = 0;
    options.workers = 2;
    options.limits = limits;
    options.drain_timeout = 5s;
    agent_ = std::make_unique<Agent>(options);
    ASSERT_TRUE(agent_->Apply(std::move(snapshot)).ok());
    ASSERT_TRUE(agent_->Start().ok());
  }
  uint16_t outbound() const { return agent_->outbound_port(); }

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
  v1::Snapshot s = BaseSnapshot("v1");
  AddService(s, "web.shop", {a.port()});
  StartAgent(s);
  Client c(outbound());
  auto r = c.Get("web.shop", "/", "Connection: close, x-private\r\nx-private: 1\r\nKeep-Alive: 5\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200);
  EXPECT_EQ((*r)[boost::beast::http::field::connection], "close");
  std::string seen = a.last_request_header();
  EXPECT_EQ(seen.find("x-private"), std::string::npos) << seen;
  EXPECT_EQ(seen.find("Keep-Alive"), std::string::npos) << seen;
  EXPECT_NE(seen.find("traceparent: 00-"), std::string::npos) << seen;
  EXPECT_TRUE(c.ClosedByPeer());
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
  r = c.Get("web.shop", "/slow");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 504);
  r = c.Get("web.shop", "/reset");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 502);
  r = c.Get("web.shop", "/status/418");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 418);
}

TEST_F(ProxyTest, RetriesConfiguredStatusesOnAnotherEndpoint) {
  TestUpstream a("a"), b("b");
  v1::Snapshot s = BaseSnapshot("v1");
  AddService(s, "web.shop", {a.port(), b.port()});
  s.mutable_clusters(0)->mutable_retry()->set_num_retries(1);
  s.mutable_clusters(0)->mutable_retry()->add_retry_on_status(503);
  s.mutable_clusters(0)->mutable_retry()->mutable_backoff_base()->set_nanos(1'000'000);
  StartAgent(s);
  Client c(outbound());
  auto r = c.Get("web.shop", "/status/503");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 503);
  EXPECT_EQ(a.requests() + b.requests(), 2);
  EXPECT_EQ(a.requests(), 1);
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

TEST_F(ProxyTest, StreamsChunkedBodiesBothWaysAndAnswers100Continue) {
  TestUpstream a("a");
  v1::Snapshot s = BaseSnapshot("v1");
  AddService(s, "web.shop", {a.port()});
  StartAgent(s);
  Client c(outbound());
  ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: web.shop\r\nTransfer-Encoding: chunked\r\n"
                     "Expect: 100-continue\r\n\r\n"));
  // The agent says 100 Continue before the body is sent.
  auto interim = c.Read();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->result_int(), 100);
  std::string expected;
  for (int i = 0; i < 64; ++i) {
    std::string piece(50'000, static_cast<char>('a' + i % 26));
    expected += piece;
    char size[16];
    std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
    ASSERT_TRUE(c.Send(size + piece + "\r\n"));
  }
  ASSERT_TRUE(c.Send("0\r\n\r\n"));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200);
  EXPECT_TRUE(r->chunked());
  EXPECT_EQ(r->body().size(), expected.size());
  EXPECT_TRUE(r->body() == expected);
  // The connection stays usable.
  auto again = c.Get("web.shop", "/");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->body(), "a");
}

TEST_F(ProxyTest, PipelinedRequestsAreAnsweredInOrder) {
  TestUpstream a("a");
  v1::Snapshot s = BaseSnapshot("v1");
  AddService(s, "web.shop", {a.port()});
  StartAgent(s);
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
  v1::Snapshot s = BaseSnapshot("v1");
  AddService(s, "web.shop", {a.port()});
  StartAgent(s);
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

TEST_F(ProxyTest, InboundThrottleAnswers429) {
  TestUpstream app("app");
  v1::Snapshot s = BaseSnapshot("v1");
  v1::Service& svc = AddService(s, "httpbin.httpbin", {app.port()}, true);
  svc.mutable_traffic()->mutable_rate_limit()->set_requests(2);
  svc.mutable_traffic()->mutable_rate_limit()->mutable_per()->set_seconds(3600);
  StartAgent(s);
  Client c(agent_->inbound_port());
  EXPECT_EQ(c.Get("httpbin.httpbin", "/")->result_int(), 200);
  EXPECT_EQ(c.Get("httpbin.httpbin", "/")->result_int(), 200);
  EXPECT_EQ(c.Get("httpbin.httpbin", "/")->result_int(), 429);
  // The metrics module counts in its log step, after the response went out.
  EXPECT_TRUE(WaitFor([&] {
    return agent_->state().stats.CounterValue(
               "meshplug_http_requests_total",
               {{"direction", "inbound"}, {"service", "httpbin.httpbin"}, {"code", "4xx"}}) == 1;
  }));
}

TEST_F(ProxyTest, OutboundThroughInboundToTheApp) {
  TestUpstream app("app");
  // One agent plays both sides: its outbound cluster's endpoint is its own inbound listener.
  AgentOptions options;
  options.bind_address = "127.0.0.1";
  options.outbound_port = options.admin_port = 0;
  options.workers = 1;
  Agent probe(options);  // finds a free inbound port
  ASSERT_TRUE(probe.Start().ok());
  uint16_t inbound = probe.inbound_port();
  probe.Drain();
  v1::Snapshot s = BaseSnapshot("v1");
  AddService(s, "httpbin.httpbin", {inbound});
  AddService(s, "httpbin.httpbin", {app.port()}, true);
  // Two services of one name (outbound and inbound) must differ by name.
  s.mutable_services(1)->set_name("httpbin.httpbin.local");
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

TEST_F(ProxyTest, TcpProxyingWithHalfClose) {
  TcpEchoUpstream echo("echo:");
  v1::Snapshot s = BaseSnapshot("v1");
  v1::Cluster* cluster = s.add_clusters();
  cluster->set_name("db|5432");
  v1::Endpoints* e = s.add_endpoints();
  e->set_cluster("db|5432");
  e->add_endpoints()->set_address("127.0.0.1");
  e->mutable_endpoints(0)->set_port(echo.port());
  v1::Service* svc = s.add_services();
  svc->set_name("db.data");
  v1::ServicePort* port = svc->add_ports();
  port->set_port(5432);
  port->set_protocol(v1::PROTOCOL_TCP);
  // A free port for the TCP listener: bind, read, release.
  uint16_t listen_port;
  {
    TestUpstream probe("probe");
    listen_port = probe.port();
  }
  port->set_tcp_listen_port(listen_port);
  port->add_tcp_clusters()->set_cluster("db|5432");
  port->mutable_tcp_clusters(0)->set_weight(1);
  StartAgent(s);
  Client c(listen_port);
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send("hello "));
  ASSERT_TRUE(c.Send("world"));
  boost::system::error_code ec;
  c.stream().socket().shutdown(net::ip::tcp::socket::shutdown_send, ec);
  std::string received;
  bool ended = false;
  std::array<char, 1024> piece;
  std::function<void()> read = [&] {
    c.stream().async_read_some(net::buffer(piece), [&](boost::system::error_code ec, size_t n) {
      received.append(piece.data(), n);
      if (ec) {
        ended = true;
      } else {
        read();
      }
    });
  };
  read();
  c.RunUntil([&] { return ended; });
  EXPECT_EQ(received, "echo:hello world");
}

}  // namespace
}  // namespace meshplug::agent
