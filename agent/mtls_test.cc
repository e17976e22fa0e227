// mTLS between two agents over real sockets: the caller originates TLS 1.3 with its
// workload certificate and checks the destination's SPIFFE ID; the destination requires a
// client certificate from the mesh's roots and, in strict mode, refuses plaintext.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <functional>

#include <boost/asio/connect.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>

#include "agent/agent.h"
#include "agent/chains/script_runtime.h"
#include "agent/testing/test_support.h"
#include "common/x509.h"
#include "net/tls.h"

namespace meshplug::agent {
namespace {

namespace asio = boost::asio;
using testing::AddService;
using testing::BaseSnapshot;
using testing::Client;
using testing::FreePort;
using testing::LocalAgentOptions;
using testing::TcpEchoUpstream;
using testing::TestUpstream;
using testing::WaitFor;

constexpr const char* kClientId = "spiffe://cluster.local/ns/a/sa/client";
constexpr const char* kServerId = "spiffe://cluster.local/ns/b/sa/server";

struct Ca {
  std::string key, cert;
  Ca() : key(*x509::NewPrivateKey()) {
    x509::Profile p;
    p.common_name = "test root";
    p.is_ca = true;
    cert = *x509::SelfSignedCa(key, p);
  }
};

struct Identity {
  std::string key, chain, bundle;
};

Identity Issue(const Ca& ca, const std::string& spiffe_id, std::chrono::seconds lifetime = std::chrono::hours(1)) {
  Identity id;
  id.key = *x509::NewPrivateKey();
  x509::Profile p;
  p.common_name = "ns/name";
  p.spiffe_id = spiffe_id;
  p.lifetime = lifetime;
  id.chain = *x509::SignCsr(*x509::MakeCsr(id.key, ""), ca.cert, ca.key, p);
  id.bundle = ca.cert;
  return id;
}

std::string Metric(Agent& agent, const std::string& series) {
  const std::string text = agent.stats().RenderPrometheus();
  const size_t at = text.find(series + " ");
  return at == std::string::npos ? "" : text.substr(at + series.size() + 1, text.find('\n', at) - at - series.size() - 1);
}

class MtlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    v1::Snapshot in = BaseSnapshot("server");
    AddService(in, "web.b", {app_.port()}, /*inbound=*/true);
    in.mutable_settings()->set_mtls_mode(v1::MTLS_STRICT);
    ASSERT_TRUE(server_.Apply(in).ok());
    ASSERT_TRUE(server_.Start().ok());
    const Identity s = Issue(ca_, kServerId);
    ASSERT_TRUE(server_.SetWorkloadCertificate(s.key, s.chain, s.bundle).ok());
    const Identity c = Issue(ca_, kClientId);
    ASSERT_TRUE(client_.SetWorkloadCertificate(c.key, c.chain, c.bundle).ok());
    ASSERT_TRUE(client_.Start().ok());
    Route(kServerId);
  }

  // The caller's snapshot: web.b behind the server agent, which must be `identity`.
  void Route(const std::string& identity) {
    v1::Snapshot out = BaseSnapshot("client-" + identity);
    AddService(out, "web.b", {server_.inbound_port()});
    out.mutable_endpoints(0)->mutable_endpoints(0)->set_identity(identity);
    ASSERT_TRUE(client_.Apply(out).ok());
  }

  // A raw TLS 1.3 client to the server's inbound listener presenting `id` (none if null):
  // sends `bytes`, half-closes with `end` and returns all it reads until the agent ends
  // the connection ("" when the handshake fails).
  std::string TlsConversation(const Identity* id, const std::string& bytes, bool end, std::string* alpn = nullptr) {
    auto context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    if (id) {
      auto contexts = net::MakeTlsContexts(id->key, id->chain, id->bundle);
      EXPECT_TRUE(contexts.ok());
      context = contexts->client;
    }
    context->set_verify_mode(asio::ssl::verify_none);
    asio::io_context io;
    asio::ssl::stream<asio::ip::tcp::socket> tls(io, *context);
    boost::system::error_code ec;
    tls.lowest_layer().connect({asio::ip::make_address("127.0.0.1"), server_.inbound_port()}, ec);
    if (ec) return "";
    // Every step asynchronous, all within one deadline: a blocking read would wait forever.
    std::string received;
    std::array<char, 4096> piece;
    std::function<void()> read = [&] {
      tls.async_read_some(asio::buffer(piece), [&](boost::system::error_code e, size_t n) {
        received.append(piece.data(), n);
        if (!e) read();
      });
    };
    tls.async_handshake(asio::ssl::stream_base::client, [&](boost::system::error_code e) {
      if (e) return;
      if (alpn) {
        const unsigned char* name = nullptr;
        unsigned int len = 0;
        SSL_get0_alpn_selected(tls.native_handle(), &name, &len);
        alpn->assign(reinterpret_cast<const char*>(name), len);
      }
      asio::async_write(tls, asio::buffer(bytes), [&](boost::system::error_code w, size_t) {
        if (w) return;
        boost::system::error_code ignored;
        if (end) tls.lowest_layer().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
        read();
      });
    });
    io.run_for(std::chrono::seconds(10));
    return received;
  }

  // The HTTP status of a GET / to web.b straight to the server's inbound listener (0: none).
  int DirectTls(const Identity* id, std::string* alpn = nullptr) {
    const std::string answer =
        TlsConversation(id, "GET / HTTP/1.1\r\nHost: web.b\r\nConnection: close\r\n\r\n", false, alpn);
    return answer.size() < 12 ? 0 : std::atoi(answer.c_str() + 9);
  }

  // Both agents with TCP service db.b:5432 (the server's app: `echo`) next to web.b; the
  // client serves db.b on `listen_port` and expects the server to be `identity`.
  void ServeTcp(uint16_t echo, uint16_t listen_port, v1::MtlsMode mode, const std::string& identity = kServerId) {
    v1::Snapshot in = BaseSnapshot("server-tcp");
    AddService(in, "web.b", {app_.port()}, /*inbound=*/true);
    testing::AddTcpService(in, "db.b", 5432, "127.0.0.1", echo, 0, /*inbound=*/true);
    in.mutable_settings()->set_mtls_mode(mode);
    ASSERT_TRUE(server_.Apply(in).ok());
    v1::Snapshot out = BaseSnapshot("client-tcp");
    AddService(out, "web.b", {server_.inbound_port()});
    testing::AddTcpService(out, "db.b", 5432, "127.0.0.1", server_.inbound_port(), listen_port);
    for (auto& endpoints : *out.mutable_endpoints()) endpoints.mutable_endpoints(0)->set_identity(identity);
    ASSERT_TRUE(client_.Apply(out).ok());
  }

  Ca ca_;
  TestUpstream app_{"app"};
  std::unique_ptr<chains::ScriptFactory> scripts_ = chains::MakeScriptRuntime();
  Agent server_{LocalAgentOptions(1)};
  Agent client_{LocalAgentOptions(1), nullptr, scripts_.get()};  // plugins' http_call
};

TEST_F(MtlsTest, AgentsTalkMutualTls13AndTheServerSeesTheCaller) {
  auto r = Client(client_.outbound_port()).Get("web.b", "/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200);
  EXPECT_EQ(r->body(), "app");
  EXPECT_EQ(Metric(server_, "meshplug_agent_tls_handshakes_total{direction=\"inbound\",result=\"ok\"}"), "1");
  // The right certificate from the mesh's CA, straight to the listener, works too.
  const Identity right = Issue(ca_, kClientId);
  std::string alpn;
  EXPECT_EQ(DirectTls(&right, &alpn), 200);
  EXPECT_EQ(alpn, "http/1.1");
}

TEST_F(MtlsTest, StrictRefusesPlaintextAndGarbage) {
  auto plain = Client(server_.inbound_port()).Get("web.b", "/");
  EXPECT_FALSE(plain) << plain->result_int();
  // A TLS record holding a ClientHello one byte long: not a hello at all. The agent
  // answers with an alert and closes.
  asio::io_context io;
  asio::ip::tcp::socket garbage(io);
  garbage.connect({asio::ip::make_address("127.0.0.1"), server_.inbound_port()});
  timeval tv{5, 0};
  setsockopt(garbage.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  asio::write(garbage, asio::buffer(std::string("\x16\x03\x01\x00\x05\x01\x00\x00\x01\xff", 10)));
  boost::system::error_code ec;
  std::string answer;
  for (int i = 0; i < 16 && !ec; ++i) {  // bounded: the alert, then the end
    char buf[256];
    answer.append(buf, garbage.read_some(asio::buffer(buf), ec));
  }
  EXPECT_EQ(ec, asio::error::eof);
  EXPECT_EQ(answer.substr(0, 1), "\x15");  // a TLS alert record
  EXPECT_EQ(Metric(server_, "meshplug_agent_tls_handshakes_total{direction=\"inbound\",result=\"ok\"}"), "");
  EXPECT_EQ(Metric(server_, "meshplug_agent_tls_handshakes_total{direction=\"inbound\",result=\"plaintext refused\"}"), "1");
  EXPECT_EQ(app_.requests(), 0);
}

TEST_F(MtlsTest, ACertificateFromAnotherCaOrExpiredOrMissingIsRefused) {
  Ca other;
  const Identity foreign = Issue(other, kClientId);
  EXPECT_EQ(DirectTls(&foreign), 0);
  EXPECT_EQ(DirectTls(nullptr), 0);
  EXPECT_EQ(app_.requests(), 0);
  const Identity expiring = Issue(ca_, kClientId, std::chrono::seconds(1));
  // Valid from a minute back, for clock skew; refused once its second has passed.
  EXPECT_TRUE(WaitFor([&] { return DirectTls(&expiring) == 0; }, std::chrono::seconds(10)));
  EXPECT_NE(server_.stats().RenderPrometheus().find("certificate verify failed"), std::string::npos)
      << server_.stats().RenderPrometheus();
}

TEST_F(MtlsTest, ACertificateFromAnotherCaUnderTheSameRootIsRefused) {
  // Another team's intermediate under the mesh's root mints the caller's own SPIFFE ID.
  Ca other_team;
  x509::Profile intermediate;
  intermediate.common_name = "other team";
  intermediate.is_ca = true;
  other_team.cert = *x509::SignCsr(*x509::MakeCsr(other_team.key, ""), ca_.cert, ca_.key, intermediate);
  Identity forged = Issue(other_team, kClientId);
  forged.chain += other_team.cert;  // leaf, then the intermediate: it chains to the mesh's root
  forged.bundle = ca_.cert;
  EXPECT_EQ(DirectTls(&forged), 0);
  EXPECT_EQ(app_.requests(), 0);
}

TEST_F(MtlsTest, TheCallerRefusesADestinationWithAnotherIdentity) {
  Route("spiffe://cluster.local/ns/b/sa/impostor");
  auto r = Client(client_.outbound_port()).Get("web.b", "/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 503);
  EXPECT_NE(r->body().find("upstream connect failed: certificate verify failed"), std::string::npos) << r->body();
  EXPECT_EQ(app_.requests(), 0);
}

// A plugin's http_call to a mesh service behind an agent goes over mTLS to exactly that
// agent's identity, as the proxy's own requests do: the strict server answers it.
TEST_F(MtlsTest, APluginsHttpCallToAMeshServiceUsesMutualTls) {
  v1::Snapshot out = BaseSnapshot("client-with-plugin");
  AddService(out, "web.b", {server_.inbound_port()});
  out.mutable_endpoints(0)->mutable_endpoints(0)->set_identity(kServerId);
  v1::PluginScript* ps = out.add_scripts();
  ps->set_name("caller@1");
  ps->set_plugin("caller");
  ps->set_source(R"(
function on_request(req, ctx)
  if req.path ~= "/via-plugin" then return end
  local res, err = http_call{host = "web.b:80", path = "/"}
  respond(200, {}, res and (res.status .. " " .. res.body) or ("failed: " .. err))
end)");
  auto* chain = out.mutable_chains()->mutable_outbound_http();
  v1::ChainModule* m = chain->Add();
  m->set_name("caller");
  m->set_priority(60000);
  m->set_script("caller@1");
  std::rotate(chain->begin(), chain->end() - 1, chain->end());
  auto applied = client_.Apply(out);
  ASSERT_TRUE(applied.ok()) << applied.status();
  auto r = Client(client_.outbound_port()).Get("web.b", "/via-plugin");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body(), "200 app");
  EXPECT_EQ(Metric(server_, "meshplug_agent_tls_handshakes_total{direction=\"inbound\",result=\"ok\"}"), "1");

  // Expecting another identity at that endpoint, the call fails rather than reaching it.
  out.set_version("client-with-plugin-2");
  out.mutable_endpoints(0)->mutable_endpoints(0)->set_identity("spiffe://cluster.local/ns/b/sa/someone-else");
  ASSERT_TRUE(client_.Apply(out).ok());
  r = Client(client_.outbound_port()).Get("web.b", "/via-plugin");
  ASSERT_TRUE(r);
  EXPECT_NE(r->body().find("failed: connect 127.0.0.1:"), std::string::npos) << r->body();
  EXPECT_NE(r->body().find("certificate verify failed"), std::string::npos) << r->body();
}

// With forward_client_cert the app learns the verified caller from x-forwarded-client-cert;
// a value the caller sends itself never reaches the app, with or without mTLS.
TEST_F(MtlsTest, TheAppSeesTheVerifiedCallerAndNeverAForgedOne) {
  v1::Snapshot in = BaseSnapshot("server-xfcc");
  AddService(in, "web.b", {app_.port()}, /*inbound=*/true);
  in.mutable_settings()->set_forward_client_cert(true);
  ASSERT_TRUE(server_.Apply(in).ok());
  Client client(client_.outbound_port());
  auto r = client.Get("web.b", "/", "x-forwarded-client-cert: URI=spiffe://cluster.local/ns/kube-system/sa/admin\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200);
  const std::string seen = app_.last_request_header();
  EXPECT_NE(seen.find(std::string("x-forwarded-client-cert: URI=") + kClientId + "\r\n"), std::string::npos) << seen;
  EXPECT_EQ(seen.find("kube-system"), std::string::npos) << seen;
  // Plaintext (permissive now) straight to the inbound listener: the forged value is dropped.
  auto plain = Client(server_.inbound_port())
                   .Get("web.b", "/", "x-forwarded-client-cert: URI=spiffe://forged\r\nX_Forwarded_Client_Cert: forged\r\n");
  ASSERT_TRUE(plain);
  EXPECT_EQ(app_.last_request_header().find("forged"), std::string::npos) << app_.last_request_header();
  EXPECT_EQ(app_.last_request_header().find("x-forwarded-client-cert"), std::string::npos);
  EXPECT_EQ(app_.last_request_header().find("X_Forwarded"), std::string::npos);
}

// A TCP service behind another agent: the caller's agent opens mTLS to the destination's
// inbound listener and a CONNECT tunnel through it, in strict mode; bytes go both ways
// with half-close, a megabyte across many TLS records.
TEST_F(MtlsTest, TcpBetweenAgentsTravelsInAnMtlsTunnel) {
  TcpEchoUpstream echo("echo:");
  const uint16_t listen_port = FreePort();
  ServeTcp(echo.port(), listen_port, v1::MTLS_STRICT);
  Client c(listen_port);
  ASSERT_TRUE(c.connected());
  const std::string big(1 << 20, 'x');
  ASSERT_TRUE(c.Send("hello "));
  ASSERT_TRUE(c.Send(big));
  const std::string back = c.EndAndReadToEnd();
  EXPECT_EQ(back.size(), 11 + big.size());
  EXPECT_EQ(back.substr(0, 11), "echo:hello ");
  EXPECT_EQ(Metric(client_, "meshplug_agent_tcp_tunnels_total{direction=\"outbound\",result=\"ok\"}"), "1");
  EXPECT_EQ(Metric(server_, "meshplug_agent_tcp_tunnels_total{direction=\"inbound\",result=\"ok\"}"), "1");
  EXPECT_EQ(Metric(server_, "meshplug_agent_tls_handshakes_total{direction=\"inbound\",result=\"ok\"}"), "1");
}

// The caller expects another identity at the endpoint: the handshake fails and the app
// gets nothing; no plaintext fallback.
TEST_F(MtlsTest, ATcpTunnelToAnotherIdentityIsNotOpened) {
  TcpEchoUpstream echo("echo:");
  const uint16_t listen_port = FreePort();
  ServeTcp(echo.port(), listen_port, v1::MTLS_STRICT, "spiffe://cluster.local/ns/b/sa/impostor");
  Client c(listen_port);
  ASSERT_TRUE(c.Send("secret"));
  EXPECT_EQ(c.EndAndReadToEnd(), "");
  EXPECT_EQ(Metric(client_, "meshplug_agent_tcp_tunnels_total{direction=\"outbound\",result=\"no connection\"}"), "1");
  EXPECT_EQ(Metric(server_, "meshplug_agent_tcp_tunnels_total{direction=\"inbound\",result=\"ok\"}"), "");
}

// WebSocket across the mesh hop: the upgrade goes through both agents' http chains over
// mTLS, and the bytes after the 101 through both.
TEST_F(MtlsTest, WebSocketBetweenAgentsOverMutualTls) {
  testing::UpgradeEcho ws;
  testing::RawUpstream app(ws.handler());
  v1::Snapshot in = BaseSnapshot("server-ws");
  AddService(in, "web.b", {app.port()}, /*inbound=*/true);
  in.mutable_settings()->set_mtls_mode(v1::MTLS_STRICT);
  ASSERT_TRUE(server_.Apply(in).ok());
  Client c(client_.outbound_port());
  ASSERT_TRUE(c.Send("GET /chat HTTP/1.1\r\nHost: web.b\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"));
  auto r = c.Read();
  ASSERT_TRUE(r) << c.last_error().message();
  EXPECT_EQ(r->result_int(), 101);
  ASSERT_TRUE(c.Send("over mtls"));
  EXPECT_EQ(c.EndAndReadToEnd(), "ws:over mtls");
  EXPECT_EQ(Metric(server_, "meshplug_agent_tls_handshakes_total{direction=\"inbound\",result=\"ok\"}"), "1");
  EXPECT_EQ(Metric(client_, "meshplug_http_upgrades_total{cluster=\"web.b|80\"}"), "1");
}

// The inbound end answers 200 only once the app took the connection: 502 when it is not
// listening, 403 when the inbound-tcp chain does not forward; and an app's own CONNECT to
// its outbound listener is refused (it would be a raw tunnel under the workload's identity).
TEST_F(MtlsTest, ATunnelIsAnsweredOnlyOnceTheAppTookTheConnection) {
  const Identity caller = Issue(ca_, kClientId);
  const std::string connect = "CONNECT db.b:5432 HTTP/1.1\r\nHost: db.b:5432\r\n\r\n";
  ServeTcp(FreePort(), FreePort(), v1::MTLS_STRICT);  // nothing listens on the app's port
  EXPECT_EQ(TlsConversation(&caller, connect, false).substr(0, 12), "HTTP/1.1 502");
  EXPECT_EQ(Metric(server_, "meshplug_agent_tcp_tunnels_total{direction=\"inbound\",result=\"app unreachable\"}"), "1");

  TcpEchoUpstream echo("echo:");
  v1::Snapshot in = BaseSnapshot("server-no-tcp-chain");
  testing::AddTcpService(in, "db.b", 5432, "127.0.0.1", echo.port(), 0, /*inbound=*/true);
  in.mutable_chains()->clear_inbound_tcp();
  ASSERT_TRUE(server_.Apply(in).ok());
  EXPECT_EQ(TlsConversation(&caller, connect, false).substr(0, 12), "HTTP/1.1 403");
  EXPECT_EQ(Metric(server_, "meshplug_agent_tcp_tunnels_total{direction=\"inbound\",result=\"refused by chain\"}"), "1");

  Client app(client_.outbound_port());
  ASSERT_TRUE(app.Send(connect));
  auto r = app.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 405);
}

// Straight to the inbound listener: a tunnel needs mTLS, names a TCP port of this
// workload's services, and never leads to an HTTP port (whose requests must meet the
// inbound HTTP chain) or anywhere else.
TEST_F(MtlsTest, TunnelsAreOnlyForAgentsAndOnlyToTcpServicePorts) {
  TcpEchoUpstream echo("echo:");
  ServeTcp(echo.port(), FreePort(), v1::MTLS_PERMISSIVE);
  const Identity caller = Issue(ca_, kClientId);
  auto connect = [](const std::string& target) { return "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n"; };
  EXPECT_EQ(TlsConversation(&caller, connect("db.b:5432") + "abc", true), "HTTP/1.1 200 OK\r\n\r\necho:abc");
  EXPECT_EQ(TlsConversation(&caller, connect("web.b:80"), false).substr(0, 12), "HTTP/1.1 403");
  EXPECT_EQ(TlsConversation(&caller, connect("db.b:5433"), false).substr(0, 12), "HTTP/1.1 404");
  EXPECT_EQ(TlsConversation(&caller, connect("db.other:5432"), false).substr(0, 12), "HTTP/1.1 404");
  EXPECT_EQ(TlsConversation(&caller, connect("127.0.0.1:" + std::to_string(echo.port())), false).substr(0, 12),
            "HTTP/1.1 404");
  EXPECT_EQ(TlsConversation(&caller, connect("db.b"), false).substr(0, 12), "HTTP/1.1 404");
  // Plaintext (permissive mode serves plaintext HTTP) is never a tunnel.
  Client plain(server_.inbound_port());
  ASSERT_TRUE(plain.Send(connect("db.b:5432") + "abc"));
  auto r = plain.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 403);
  EXPECT_EQ(Metric(server_, "meshplug_agent_tcp_tunnels_total{direction=\"inbound\",result=\"ok\"}"), "1");
  EXPECT_EQ(Metric(server_, "meshplug_agent_tcp_tunnels_total{direction=\"inbound\",result=\"plaintext refused\"}"), "1");
  EXPECT_EQ(app_.requests(), 0);
}

}  // namespace
}  // namespace meshplug::agent
