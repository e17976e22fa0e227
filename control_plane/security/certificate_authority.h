// The mesh's certificate authority: a root made on first start and kept in the store, or
// the operator's own CA (an intermediate under a corporate root, like Istio's plug-in CA).
// It signs workload certificates for the identity the caller authenticated as, and the
// control plane's own serving certificate.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/x509.h"
#include "control_plane/store/store.h"

namespace meshplug::control_plane::security {

struct CertificateSettings {
  std::string trust_domain = x509::kDefaultTrustDomain;
  std::chrono::seconds lifetime{24 * 3600};
};
// MeshConfig's certificate settings, defaults where it says nothing.
CertificateSettings ReadCertificateSettings(store::Store& store);

class CertificateAuthority {
 public:
  struct Files {
    std::string cert;  // the CA certificate, then its chain up to the root
    std::string key;
  };
  // With `files` set, the operator's CA; else the store's, made on first start.
  static absl::StatusOr<std::unique_ptr<CertificateAuthority>> Open(store::Store& store, const Files& files);

  // The roots that verify what this CA signs (PEM).
  const std::string& trust_bundle() const { return bundle_; }
  // The CA certificate's subject key id (hex): what its certificates name as issuer.
  const std::string& key_id() const { return key_id_; }

  // A workload certificate chain (leaf, then intermediates) for the key in `csr_pem`.
  absl::StatusOr<std::string> SignWorkload(const std::string& csr_pem, const std::string& trust_domain,
                                           const std::string& ns, const std::string& name,
                                           const std::string& service_account, std::chrono::seconds lifetime) const;
  // A serving certificate chain for the key in `csr_pem`.
  absl::StatusOr<std::string> SignServer(const std::string& csr_pem, const std::vector<std::string>& dns_names,
                                         const std::vector<std::string>& ip_addresses,
                                         std::chrono::seconds lifetime) const;

 private:
  CertificateAuthority(std::string cert, std::string key, std::string intermediates, std::string bundle,
                       std::string key_id)
      : cert_(std::move(cert)), key_(std::move(key)), intermediates_(std::move(intermediates)),
        bundle_(std::move(bundle)), key_id_(std::move(key_id)) {}

  const std::string cert_, key_;
  const std::string intermediates_;  // sent after each leaf: the CA certificate and any above it below the root
  const std::string bundle_;
  const std::string key_id_;
};

}  // namespace meshplug::control_plane::security
