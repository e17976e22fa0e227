// X.509 for workload identity, with OpenSSL: ECDSA P-256 keys, CSRs, certificates with a
// SPIFFE URI SAN, and reading back what a certificate says. PEM in and out.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

struct x509_st;  // OpenSSL's X509

namespace meshplug::x509 {

using Clock = std::chrono::system_clock;

// A new ECDSA P-256 private key (PKCS#8 PEM).
absl::StatusOr<std::string> NewPrivateKey();

// A CSR signed with `key_pem` that asks for `spiffe_id` (the signer decides what it gets).
absl::StatusOr<std::string> MakeCsr(std::string_view key_pem, std::string_view spiffe_id);

// What a certificate to issue says. The subject's common name carries the workload
// ("NAMESPACE/NAME") or the server's name; the SPIFFE ID is the only URI SAN.
struct Profile {
  std::string common_name;
  std::string spiffe_id;                  // empty: no URI SAN
  std::vector<std::string> dns_names;     // server certificates
  std::vector<std::string> ip_addresses;  // server certificates
  bool is_ca = false;
  std::chrono::seconds lifetime{24 * 3600};
};

// A self-signed CA certificate for `key_pem`.
absl::StatusOr<std::string> SelfSignedCa(std::string_view key_pem, const Profile& profile);

// A certificate for the public key of `csr_pem` (whose signature must verify), issued by
// the CA `issuer_cert_pem`/`issuer_key_pem`. Only the key is taken from the CSR; what it
// claims is ignored in favour of `profile`.
absl::StatusOr<std::string> SignCsr(std::string_view csr_pem, std::string_view issuer_cert_pem,
                                    std::string_view issuer_key_pem, const Profile& profile);

struct CertInfo {
  std::string common_name;
  std::string spiffe_id;  // the URI SAN starting with spiffe://, empty if none
  Clock::time_point not_before, not_after;
  bool is_ca = false;
  bool self_signed = false;
  std::string subject_key_id;    // hex; "" if the extension is absent
  std::string authority_key_id;  // hex: the issuer's subject key id
};

// A certificate parsed once, for several questions about it: parsing is most of their
// cost (OpenSSL 3 looks up a decoder for the public key on every parse).
class Certificate {
 public:
  // The first certificate in `pem`.
  static absl::StatusOr<Certificate> Parse(std::string_view pem);
  CertInfo Info() const;
  // Whether it carries a valid signature by `issuer`'s key (signature only: names and
  // times are the caller's to check).
  bool SignedBy(const Certificate& issuer) const;

 private:
  explicit Certificate(std::shared_ptr<x509_st> cert) : cert_(std::move(cert)) {}
  std::shared_ptr<x509_st> cert_;  // never null
};

// What the first certificate in `pem` says.
absl::StatusOr<CertInfo> Inspect(std::string_view pem);
// The same for a certificate OpenSSL holds (as a TLS peer presented it); null: NOT_FOUND.
absl::StatusOr<CertInfo> Inspect(x509_st* cert);

// Every certificate in `pem`, each as its own PEM block, in order.
absl::StatusOr<std::vector<std::string>> SplitCertificates(std::string_view pem);

// Whether the first certificate in `cert_pem` carries a valid signature by the key of
// `issuer_cert_pem` (signature only: names and times are the caller's to check).
bool SignedBy(std::string_view cert_pem, std::string_view issuer_cert_pem);

// Whether `key_pem` is the private key of the first certificate in `cert_pem`.
bool KeyMatches(std::string_view key_pem, std::string_view cert_pem);

inline constexpr const char* kDefaultTrustDomain = "cluster.local";

// "spiffe://<trust_domain>/ns/<namespace>/sa/<service_account>".
std::string SpiffeId(std::string_view trust_domain, std::string_view ns, std::string_view service_account);

// The service account of a SPIFFE ID made by SpiffeId ("" for another shape).
std::string ServiceAccountOf(std::string_view spiffe_id);

}  // namespace meshplug::x509
