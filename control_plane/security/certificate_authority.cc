#include "control_plane/security/certificate_authority.h"


#include "absl/time/time.h"
#include "common/files.h"
#include "common/strings.h"
#include "common/x509.h"
#include "meshplug/v1/resources.pb.h"

namespace meshplug::control_plane::security {
namespace {

constexpr const char* kCaSecret = "ca";  // the certificate PEM, then the key PEM
constexpr auto kRootLifetime = std::chrono::hours(24 * 365 * 10);

// The store's CA: made once; a later start reads the same one.
absl::StatusOr<std::pair<std::string, std::string>> StoredCa(store::Store& store) {
  auto existing = store.GetSecret(kCaSecret);
  if (!existing.ok()) return existing.status();
  if (!existing->has_value()) {
    auto key = x509::NewPrivateKey();
    if (!key.ok()) return key.status();
    x509::Profile root;
    root.common_name = "meshplug mesh root";
    root.is_ca = true;
    root.lifetime = kRootLifetime;
    auto cert = x509::SelfSignedCa(*key, root);
    if (!cert.ok()) return cert.status();
    if (auto st = store.CreateSecret(kCaSecret, *cert + *key, 0); !st.ok()) return st.status();
    existing = store.GetSecret(kCaSecret);
    if (!existing.ok()) return existing.status();
  }
  const std::string& both = **existing;
  const size_t key_at = both.find("-----BEGIN PRIVATE KEY-----");
  if (key_at == std::string::npos) return absl::DataLossError("the store's CA is damaged (no key)");
  return std::make_pair(both.substr(0, key_at), both.substr(key_at));
}

}  // namespace

CertificateSettings ReadCertificateSettings(store::Store& store) {
  CertificateSettings s;
  auto stored = store.List(resources::Kind::kMeshConfig, "");
  if (!stored.ok() || stored->empty()) return s;
  mesh::v1::MeshConfig mc;
  if (!mc.ParseFromString(stored->front().value)) return s;
  const auto& cert = mc.spec().certificate();
  if (!cert.trust_domain().empty()) s.trust_domain = cert.trust_domain();
  absl::Duration d;
  if (!cert.service_cert_validity_duration().empty() && absl::ParseDuration(cert.service_cert_validity_duration(), &d) &&
      d >= absl::Seconds(1)) {
    s.lifetime = std::chrono::seconds(absl::ToInt64Seconds(d));
  }
  return s;
}

absl::StatusOr<std::unique_ptr<CertificateAuthority>> CertificateAuthority::Open(store::Store& store, const Files& files) {
  std::string cert_pem, key_pem;
  if (files.cert.empty() != files.key.empty()) {
    return absl::InvalidArgumentError("--ca_cert and --ca_key go together: give both or neither");
  }
  if (!files.cert.empty()) {
    auto cert = ReadFileText(files.cert, "--ca_cert");
    if (!cert.ok()) return cert.status();
    auto key = ReadFileText(files.key, "--ca_key");
    if (!key.ok()) return key.status();
    cert_pem = *cert;
    key_pem = *key;
  } else {
    auto stored = StoredCa(store);
    if (!stored.ok()) return stored.status();
    std::tie(cert_pem, key_pem) = *stored;
  }
  const std::string source = files.cert.empty() ? "the store's CA" : Cat("--ca_cert ", files.cert);
  auto chain = x509::SplitCertificates(cert_pem);
  if (!chain.ok()) return absl::InvalidArgumentError(Cat(source, ": ", chain.status().message()));
  auto info = x509::Inspect(chain->front());
  if (!info.ok()) return absl::InvalidArgumentError(Cat(source, ": ", info.status().message()));
  if (!info->is_ca) return absl::InvalidArgumentError(Cat(source, ": the certificate is not a CA (basicConstraints CA:TRUE)"));
  if (info->not_after <= x509::Clock::now()) return absl::InvalidArgumentError(Cat(source, ": the CA certificate has expired"));
  if (!x509::KeyMatches(key_pem, chain->front())) {
    return absl::InvalidArgumentError(Cat(source, ": the key is not the CA certificate's key"));
  }
  // The bundle is the root: the last certificate of the chain. Everything below it is sent
  // with each leaf so that peers holding only the root can verify it.
  std::string intermediates;
  for (size_t i = 0; i + 1 < chain->size(); ++i) intermediates += (*chain)[i];
  if (auto root = x509::Inspect(chain->back()); !root.ok() || !root->self_signed) {
    return absl::InvalidArgumentError(Cat(source, ": the chain must end with the self-signed root"));
  }
  if (info->subject_key_id.empty()) return absl::InvalidArgumentError(Cat(source, ": the CA certificate has no subject key id"));
  return std::unique_ptr<CertificateAuthority>(
      new CertificateAuthority(chain->front(), key_pem, std::move(intermediates), chain->back(), info->subject_key_id));
}

absl::StatusOr<std::string> CertificateAuthority::SignWorkload(const std::string& csr_pem, const std::string& trust_domain,
                                                               const std::string& ns, const std::string& name,
                                                               const std::string& service_account,
                                                               std::chrono::seconds lifetime) const {
  x509::Profile p;
  p.common_name = Cat(ns, "/", name);
  p.spiffe_id = x509::SpiffeId(trust_domain, ns, service_account);
  p.lifetime = lifetime;
  auto leaf = x509::SignCsr(csr_pem, cert_, key_, p);
  if (!leaf.ok()) return leaf.status();
  return *leaf + intermediates_;
}

absl::StatusOr<std::string> CertificateAuthority::SignServer(const std::string& csr_pem,
                                                             const std::vector<std::string>& dns_names,
                                                             const std::vector<std::string>& ip_addresses,
                                                             std::chrono::seconds lifetime) const {
  x509::Profile p;
  p.common_name = "meshplug control plane";
  p.dns_names = dns_names;
  p.ip_addresses = ip_addresses;
  p.lifetime = lifetime;
  auto leaf = x509::SignCsr(csr_pem, cert_, key_, p);
  if (!leaf.ok()) return leaf.status();
  return *leaf + intermediates_;
}

}  // namespace meshplug::control_plane::security
