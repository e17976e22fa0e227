// The control plane's TLS server as a client sees it on the wire.
#include "control_plane/security/server_tls.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "common/x509.h"
#include "control_plane/security/certificate_authority.h"
#include "control_plane/testing/fresh_store.h"

namespace meshplug::control_plane::security {
namespace {

int tickets_received = 0;

int CountTicket(SSL*, SSL_SESSION*) {
  ++tickets_received;
  return 0;  // not kept
}

constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0";
constexpr int kPrefaceSize = sizeof kPreface - 1;

// The session tickets a TLS 1.3 client that keeps every ticket gets from 127.0.0.1:`port`
// by the time it has read the server's first 9 bytes (an HTTP/2 frame header): a server
// sends its tickets right after the handshake, before any data of its own. -1 when the
// connection failed.
int TicketsBeforeFirstBytes(int port) {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_CLIENT);
  SSL_CTX_sess_set_new_cb(ctx.get(), CountTicket);
  static constexpr unsigned char kH2[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(ctx.get(), kH2, sizeof kH2);
  std::unique_ptr<BIO, decltype(&BIO_free_all)> bio(BIO_new_ssl_connect(ctx.get()), BIO_free_all);
  BIO_set_conn_hostname(bio.get(), "127.0.0.1");
  BIO_set_conn_port(bio.get(), std::to_string(port).c_str());
  tickets_received = 0;
  char first[9];
  if (BIO_do_connect(bio.get()) != 1 || BIO_do_handshake(bio.get()) != 1 ||
      BIO_write(bio.get(), kPreface, kPrefaceSize) != kPrefaceSize ||
      BIO_read(bio.get(), first, sizeof first) != static_cast<int>(sizeof first)) {
    return -1;
  }
  return tickets_received;
}

TEST(ServerTlsTest, TheServerIssuesNoSessionTickets) {
  const TicketSetting setting = IssueNoSessionTickets();
  if (setting == TicketSetting::kMachineSettingsKept) {
    GTEST_SKIP() << "this machine's OpenSSL configuration has TLS settings of its own";
  }
  ASSERT_EQ(setting, TicketSetting::kApplied);
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
  EXPECT_EQ(TicketsBeforeFirstBytes(port), 0);
  server->Shutdown();

  // The same client counts the two tickets of a server that asks for them itself.
  auto key = x509::NewPrivateKey();
  ASSERT_TRUE(key.ok()) << key.status();
  auto csr = x509::MakeCsr(*key, "");
  ASSERT_TRUE(csr.ok()) << csr.status();
  auto chain = (*ca)->SignServer(*csr, {}, {"127.0.0.1"}, std::chrono::hours(1));
  ASSERT_TRUE(chain.ok()) << chain.status();
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> cert_bio(BIO_new_mem_buf(chain->data(), static_cast<int>(chain->size())),
                                                     BIO_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> key_bio(BIO_new_mem_buf(key->data(), static_cast<int>(key->size())), BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr),
                                                  X509_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  ASSERT_EQ(SSL_CTX_use_certificate(ctx.get(), cert.get()), 1);
  ASSERT_EQ(SSL_CTX_use_PrivateKey(ctx.get(), pkey.get()), 1);
  SSL_CTX_set_num_tickets(ctx.get(), 2);
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(listener, 1), 0);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  std::thread serve([&] {
    const int fd = accept(listener, nullptr, nullptr);
    SSL* ssl = SSL_new(ctx.get());
    SSL_set_fd(ssl, fd);
    char preface[kPrefaceSize];
    if (SSL_accept(ssl) == 1 && SSL_read(ssl, preface, sizeof preface) > 0) SSL_write(ssl, "settings.", 9);
    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(fd);
  });
  EXPECT_EQ(TicketsBeforeFirstBytes(ntohs(addr.sin_port)), 2);
  serve.join();
  close(listener);
}

}  // namespace
}  // namespace meshplug::control_plane::security
