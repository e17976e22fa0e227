#include "net/tls.h"

#include <algorithm>
#include <utility>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/strings.h"
#include "common/x509.h"

namespace meshplug::net {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;

// The verify step for a peer's leaf certificate (depth 0): issued by our CA and, when
// `expected` is set, naming exactly that SPIFFE ID. Other depths: what OpenSSL decided.
bool VerifyLeaf(bool preverified, ssl::verify_context& vc, const std::vector<std::string>& issuers,
                const std::string& expected) {
  X509_STORE_CTX* store = vc.native_handle();
  if (!preverified) return false;
  if (X509_STORE_CTX_get_error_depth(store) != 0) return true;
  auto info = x509::Inspect(X509_STORE_CTX_get_current_cert(store));
  return info.ok() && std::find(issuers.begin(), issuers.end(), info->authority_key_id) != issuers.end() &&
         (expected.empty() || info->spiffe_id == expected);
}

// ALPN: agents call each other with h2 (offered alone per connection, see
// TlsOrigination::http2), and with http/1.1 (the context's default) for a request that asks
// to switch protocols. An inbound listener prefers h2 when offered (the connection preface
// tells the two apart after the handshake). A client that offers ALPN without either is
// refused rather than spoken to in a protocol it did not ask for.
constexpr unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
constexpr unsigned char kServerAlpn[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
               void*) {
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kServerAlpn, sizeof kServerAlpn, in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// TLS 1.3 only, our certificate (none when `chain_pem` is empty), `bundle_pem`'s roots, and
// a peer certificate required; null with `ec` when OpenSSL refused one of them.
std::shared_ptr<ssl::context> Context(ssl::context::method method, const std::string& key_pem,
                                      const std::string& chain_pem, const std::string& bundle_pem,
                                      boost::system::error_code& ec) {
  auto ctx = std::make_shared<ssl::context>(method);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_3_VERSION);
  if (!chain_pem.empty()) {
    ctx->use_certificate_chain(asio::buffer(chain_pem), ec);
    if (!ec) ctx->use_private_key(asio::buffer(key_pem), ssl::context::pem, ec);
  }
  if (!ec) ctx->add_certificate_authority(asio::buffer(bundle_pem), ec);
  if (!ec) ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert, ec);
  return ec ? nullptr : ctx;
}

absl::StatusOr<std::shared_ptr<ssl::context>> WorkloadContext(ssl::context::method method, const std::string& key_pem,
                                                              const std::string& chain_pem,
                                                              const std::string& bundle_pem) {
  boost::system::error_code ec;
  auto ctx = Context(method, key_pem, chain_pem, bundle_pem, ec);
  if (!ctx) return absl::InvalidArgumentError(Cat("the workload certificate cannot be used for TLS: ", ec.message()));
  return ctx;
}

// Verifies `name` (a DNS name or an IP address) as the server's, and sends it as SNI when
// it is a DNS name.
bool ExpectServerName(SSL* ssl, const std::string& name) {
  boost::system::error_code not_ip;
  asio::ip::make_address(name, not_ip);
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  if (!not_ip) return X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) == 1;
  // As browsers match names: a wildcard only as a whole left-most label.
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  return SSL_set_tlsext_host_name(ssl, name.c_str()) == 1 && X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0) == 1;
}

}  // namespace

absl::StatusOr<TlsContexts> MakeTlsContexts(const std::string& key_pem, const std::string& chain_pem,
                                            const std::string& bundle_pem, std::vector<std::string> issuer_key_ids) {
  auto own = x509::Inspect(chain_pem);
  if (!own.ok() || own->authority_key_id.empty()) {
    return absl::InvalidArgumentError("the workload certificate names no issuer key id");
  }
  if (issuer_key_ids.empty()) issuer_key_ids.push_back(own->authority_key_id);
  auto issuers = std::make_shared<const std::vector<std::string>>(std::move(issuer_key_ids));
  auto server = WorkloadContext(ssl::context::tls_server, key_pem, chain_pem, bundle_pem);
  if (!server.ok()) return server.status();
  (*server)->set_verify_callback([issuers](bool preverified, ssl::verify_context& vc) {
    return VerifyLeaf(preverified, vc, *issuers, "");
  });
  // No session tickets: a pooled connection with unread bytes (a ticket) counts as dead.
  SSL_CTX_set_num_tickets((*server)->native_handle(), 0);
  SSL_CTX_set_alpn_select_cb((*server)->native_handle(), SelectAlpn, nullptr);
  auto client = WorkloadContext(ssl::context::tls_client, key_pem, chain_pem, bundle_pem);
  if (!client.ok()) return client.status();
  if (SSL_CTX_set_alpn_protos((*client)->native_handle(), kAlpn, sizeof kAlpn) != 0) {
    return absl::InternalError("cannot offer ALPN http/1.1");
  }
  return TlsContexts{*server, *client, std::move(issuers)};
}

absl::StatusOr<TlsOrigination> OriginationTo(const TlsCredentials* credentials, const std::string& identity) {
  TlsContexts tls = credentials ? credentials->Get() : TlsContexts{};
  if (!tls.client) return absl::UnavailableError("this agent has no workload certificate yet for mTLS");
  return TlsOrigination{.context = std::move(tls.client), .expected_identity = identity,
                        .issuer_key_ids = std::move(tls.issuer_key_ids)};
}

absl::StatusOr<std::shared_ptr<ssl::context>> ServerVerifyingContext(const std::string& roots_pem,
                                                                      const std::string& key_pem,
                                                                      const std::string& chain_pem) {
  boost::system::error_code ec;
  auto ctx = Context(ssl::context::tls_client, key_pem, chain_pem, roots_pem, ec);
  if (!ctx) {
    return absl::InvalidArgumentError(
        Cat(chain_pem.empty() ? "the CA bundle" : "the CA bundle or the workload certificate",
            " cannot be used for TLS to the control plane: ", ec.message()));
  }
  // As gRPC's clients do: a root may be an intermediate CA (a bundle need not end at a
  // self-signed certificate).
  X509_STORE_set_flags(SSL_CTX_get_cert_store(ctx->native_handle()), X509_V_FLAG_PARTIAL_CHAIN);
  return ctx;
}

asio::awaitable<void> ClientHandshake(Stream& stream, const TlsOrigination& tls, boost::beast::error_code& ec) {
  stream.StartTls(tls.context);
  static constexpr unsigned char kH2[] = {2, 'h', '2'};
  SSL* ssl = stream.tls().native_handle();
  if (tls.http2 && SSL_set_alpn_protos(ssl, kH2, sizeof kH2) != 0) {
    ec = boost::asio::error::no_memory;
    co_return;
  }
  if (!tls.server_name.empty()) {
    if (!ExpectServerName(ssl, tls.server_name)) {
      ec = boost::asio::error::invalid_argument;  // a name OpenSSL cannot check
      co_return;
    }
  } else {
    stream.tls().set_verify_callback(
        [issuers = tls.issuer_key_ids, expected = tls.expected_identity](bool preverified, ssl::verify_context& vc) {
          return issuers && VerifyLeaf(preverified, vc, *issuers, expected);
        });
  }
  co_await stream.tls().async_handshake(ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
}

asio::awaitable<void> ServerHandshake(Stream& stream, std::shared_ptr<ssl::context> context, asio::const_buffer initial,
                                      size_t& used, boost::beast::error_code& ec) {
  stream.StartTls(std::move(context));
  used = co_await stream.tls().async_handshake(ssl::stream_base::server, initial,
                                               asio::redirect_error(asio::use_awaitable, ec));
}

std::string PeerIdentity(Stream& stream) {
  if (!stream.secure()) return "";
  X509* cert = SSL_get1_peer_certificate(stream.tls().native_handle());
  auto info = x509::Inspect(cert);
  X509_free(cert);
  return info.ok() ? info->spiffe_id : "";
}

}  // namespace meshplug::net
