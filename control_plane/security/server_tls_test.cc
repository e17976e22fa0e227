// The control plane's TLS server as a client sees it on the wire.
#include "control_plane/security/server_tls.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "control_plane/security/certificate_authority.h"
#include "control_plane/testing/fresh_store.h"

namespace meshplug::control_plane::security {
namespace {

int tickets_received = 0;

int CountTicket(SSL*, SSL_SESSION*) {
  ++tickets_received;
  return 0;  // not kept
}

TEST(ServerTlsTest, TheServerIssuesNoSessionTickets) {
  if (!IssueNoSessionTickets()) GTEST_SKIP() << "this machine's OpenSSL configuration has TLS settings of its own";
  const char* dir = std::getenv("TEST_TMPDIR");
  auto store = testing::FreshSqliteStore("server_tls");
  auto ca = CertificateAuthority::Open(*store, {});
  ASSERT_TRUE(ca.ok()) << ca.status();
  auto serving = ServingCertificate::Create(**ca, {"127.0.0.1"}, dir ? dir : "/tmp");
  ASSERT_TRUE(serving.ok()) << serving.status();
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", (*serving)->credentials(), &port);
  auto server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);

  // A TLS 1.3 client that would keep every ticket: the server sends its tickets right after
  // the handshake, before its HTTP/2 SETTINGS, so reading the SETTINGS has seen them all.
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> owned_ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  SSL_CTX* ctx = owned_ctx.get();
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
  SSL_CTX_sess_set_new_cb(ctx, CountTicket);
  static constexpr unsigned char kH2[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(ctx, kH2, sizeof kH2);
  std::unique_ptr<BIO, decltype(&BIO_free_all)> owned_bio(BIO_new_ssl_connect(ctx), BIO_free_all);
  BIO* bio = owned_bio.get();
  SSL* ssl = nullptr;
  BIO_get_ssl(bio, &ssl);
  BIO_set_conn_hostname(bio, "127.0.0.1");
  BIO_set_conn_port(bio, std::to_string(port).c_str());
  ASSERT_EQ(BIO_do_connect(bio), 1);
  ASSERT_EQ(BIO_do_handshake(bio), 1);
  static constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0";
  ASSERT_EQ(BIO_write(bio, kPreface, sizeof kPreface - 1), static_cast<int>(sizeof kPreface - 1));
  char frame_header[9];
  ASSERT_EQ(BIO_read(bio, frame_header, sizeof frame_header), static_cast<int>(sizeof frame_header));
  EXPECT_EQ(frame_header[3], 4) << "the server's first frame is its SETTINGS";
  EXPECT_EQ(tickets_received, 0);
  EXPECT_STREQ(SSL_get_version(ssl), "TLSv1.3");
  owned_bio.reset();  // closed first: the server's shutdown waits for its connections
  server->Shutdown();
}

}  // namespace
}  // namespace meshplug::control_plane::security
