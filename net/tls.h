// mTLS between agents: TLS contexts made from the workload's key, certificate chain and
// the mesh's roots (TLS 1.3 only; both sides present a certificate and verify the
// other's), the handshakes on a net::Stream, and the peer's SPIFFE ID.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "net/stream.h"

namespace meshplug::net {

// One certificate's pair of contexts; replaced whole when the certificate is renewed, so a
// connection keeps the context it started with.
struct TlsContexts {
  std::shared_ptr<boost::asio::ssl::context> server, client;
  // The mesh CAs (key ids) a peer's certificate must come from, not merely chain to the
  // same root (an operator's root may sign for others): ours, or both during a rotation.
  std::shared_ptr<const std::vector<std::string>> issuer_key_ids;
};

// `issuer_key_ids` empty: only the CA that issued our own certificate.
absl::StatusOr<TlsContexts> MakeTlsContexts(const std::string& key_pem, const std::string& chain_pem,
                                            const std::string& bundle_pem,
                                            std::vector<std::string> issuer_key_ids = {});

// The current contexts, read by every worker; empty until the workload has a certificate.
class TlsCredentials {
 public:
  void Set(TlsContexts contexts) {
    std::lock_guard lock(mu_);
    current_ = std::move(contexts);
  }
  TlsContexts Get() const {
    std::lock_guard lock(mu_);
    return current_;
  }

 private:
  mutable std::mutex mu_;
  TlsContexts current_;
};

// Who an outbound connection must reach: the context to present our certificate with and
// the SPIFFE ID the server's certificate must name.
struct TlsOrigination {
  std::shared_ptr<boost::asio::ssl::context> context = {};
  std::string expected_identity = {};
  std::shared_ptr<const std::vector<std::string>> issuer_key_ids = {};
  // Offer ALPN h2 (and only h2) instead of http/1.1.
  bool http2 = false;
  // Set for a server outside the mesh's workload identities (the control plane): its
  // certificate must chain to the context's roots and name this host, a DNS name or an
  // IP address, as HTTPS checks; `expected_identity` and `issuer_key_ids` do not apply.
  std::string server_name = {};
};

// A client context for such a server: verifies it with `roots_pem` and presents
// `chain_pem` with `key_pem` (both empty: no client certificate).
absl::StatusOr<std::shared_ptr<boost::asio::ssl::context>> ServerVerifyingContext(const std::string& roots_pem,
                                                                                  const std::string& key_pem,
                                                                                  const std::string& chain_pem);

// mTLS to a peer that must prove `identity`, with the current certificate of `credentials`
// (may be null); UNAVAILABLE while there is none: such a peer is never called in plaintext.
absl::StatusOr<TlsOrigination> OriginationTo(const TlsCredentials* credentials, const std::string& identity);

// The first byte of a TLS connection (a handshake record).
inline constexpr unsigned char kTlsHandshakeRecord = 0x16;

// Client handshake on a connected `stream`; `ec` says why it failed (a certificate that
// does not verify or names another identity fails it).
boost::asio::awaitable<void> ClientHandshake(Stream& stream, const TlsOrigination& tls, boost::beast::error_code& ec);
// Server handshake; `initial` holds bytes already read from the client (its hello), of
// which `used` were part of the handshake.
boost::asio::awaitable<void> ServerHandshake(Stream& stream, std::shared_ptr<boost::asio::ssl::context> context,
                                             boost::asio::const_buffer initial, size_t& used,
                                             boost::beast::error_code& ec);

// The SPIFFE ID of the verified peer certificate of a TLS stream ("" if none).
std::string PeerIdentity(Stream& stream);

}  // namespace meshplug::net
