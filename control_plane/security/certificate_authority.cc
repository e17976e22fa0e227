#include "control_plane/security/certificate_authority.h"

#include "absl/time/time.h"
#include "common/files.h"
#include "common/strings.h"
#include "common/x509.h"
#include "meshplug/v1/resources.pb.h"

namespace meshplug::control_plane::security {
namespace {

constexpr const char* kCaSecret = "ca";              // the CA chain PEM, then the key PEM
constexpr const char* kRotationSecret = "ca-rotation";  // "started\n" or "activated\n", then the same for the next CA
constexpr auto kRootLifetime = std::chrono::hours(24 * 365 * 10);

struct CertAndKey {
  std::string chain, key;
};

absl::StatusOr<CertAndKey> NewRoot() {
  auto key = x509::NewPrivateKey();
  if (!key.ok()) return key.status();
  x509::Profile root;
  root.common_name = "meshplug mesh root";
  root.is_ca = true;
  root.lifetime = kRootLifetime;
  auto cert = x509::SelfSignedCa(*key, root);
  if (!cert.ok()) return cert.status();
  return CertAndKey{*cert, *key};
}

// A stored "<chain PEM><key PEM>".
absl::StatusOr<CertAndKey> SplitStored(const std::string& both, const char* what) {
  const size_t marker = both.find("PRIVATE KEY-----");
  const size_t key_at = marker == std::string::npos ? marker : both.rfind("-----BEGIN", marker);
  if (key_at == std::string::npos) return absl::DataLossError(Cat("the store's ", what, " is damaged (no key)"));
  return CertAndKey{both.substr(0, key_at), both.substr(key_at)};
}

// The store's CA: made once; a later start reads the same one.
absl::StatusOr<CertAndKey> StoredCa(store::Store& store) {
  auto existing = store.GetSecret(kCaSecret);
  if (!existing.ok()) return existing.status();
  if (!existing->has_value()) {
    auto made = NewRoot();
    if (!made.ok()) return made.status();
    if (auto st = store.CreateSecret(kCaSecret, made->chain + made->key, 0); !st.ok()) return st.status();
    existing = store.GetSecret(kCaSecret);
    if (!existing.ok()) return existing.status();
  }
  return SplitStored(**existing, "CA");
}

// Checks a CA chain and key; `source` names them in errors.
absl::StatusOr<CertificateAuthority::Signer> LoadSigner(const std::string& chain_pem, const std::string& key_pem,
                                                        const std::string& source) {
  auto chain = x509::SplitCertificates(chain_pem);
  if (!chain.ok()) return absl::InvalidArgumentError(Cat(source, ": ", chain.status().message()));
  auto parsed = x509::Certificate::Parse(chain->front());
  if (!parsed.ok()) return absl::InvalidArgumentError(Cat(source, ": ", parsed.status().message()));
  const x509::CertInfo info = parsed->Info();
  if (!info.is_ca) return absl::InvalidArgumentError(Cat(source, ": the certificate is not a CA (basicConstraints CA:TRUE)"));
  if (info.not_after <= x509::Clock::now()) return absl::InvalidArgumentError(Cat(source, ": the CA certificate has expired"));
  if (!x509::KeyMatches(key_pem, chain->front())) {
    return absl::InvalidArgumentError(Cat(source, ": the key is not the CA certificate's key"));
  }
  if (auto root = x509::Inspect(chain->back()); !root.ok() || !root->self_signed) {
    return absl::InvalidArgumentError(Cat(source, ": the chain must end with the self-signed root"));
  }
  // Each certificate must be signed by the next: peers verify leaves up to that root.
  for (size_t i = 0; i + 1 < chain->size(); ++i) {
    if (!x509::SignedBy((*chain)[i], (*chain)[i + 1])) {
      return absl::InvalidArgumentError(Cat(source, ": certificate ", i + 1, " of the chain is not signed by certificate ",
                                            i + 2, "; give the CA certificate, then its issuers up to the root"));
    }
  }
  if (info.subject_key_id.empty()) return absl::InvalidArgumentError(Cat(source, ": the CA certificate has no subject key id"));
  // The bundle is the root: the last certificate of the chain. Everything below it is sent
  // with each leaf so that peers holding only the root can verify it.
  CertificateAuthority::Signer s{chain->front(), key_pem, "", chain->back(), info, *std::move(parsed)};
  for (size_t i = 0; i + 1 < chain->size(); ++i) s.intermediates += (*chain)[i];
  return s;
}

std::string ChainOf(const CertificateAuthority::Signer& s) { return s.intermediates + s.root; }

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
  if (files.cert.empty() != files.key.empty()) {
    return absl::InvalidArgumentError("--ca_cert and --ca_key go together: give both or neither");
  }
  if (!files.cert.empty()) {
    auto cert = ReadFileText(files.cert, "--ca_cert");
    if (!cert.ok()) return cert.status();
    auto key = ReadFileText(files.key, "--ca_key");
    if (!key.ok()) return key.status();
    auto signer = LoadSigner(*cert, *key, Cat("--ca_cert ", files.cert));
    if (!signer.ok()) return signer.status();
    return std::unique_ptr<CertificateAuthority>(new CertificateAuthority(store, true, *std::move(signer)));
  }
  auto state = LoadStored(store, /*repair=*/true);
  if (!state.ok()) return state.status();
  std::unique_ptr<CertificateAuthority> ca(new CertificateAuthority(store, false, std::move(state->current)));
  ca->next_ = std::move(state->next);
  ca->next_signs_ = state->next_signs;
  return ca;
}

absl::StatusOr<CertificateAuthority::Stored> CertificateAuthority::LoadStored(store::Store& store, bool repair) {
  // The rotation first: a finish writes the new CA, then deletes the rotation, so in this
  // order a reader never sees the old CA without the new one beside it.
  auto rotation = store.GetSecret(kRotationSecret);
  if (!rotation.ok()) return rotation.status();
  auto stored = StoredCa(store);
  if (!stored.ok()) return stored.status();
  auto signer = LoadSigner(stored->chain, stored->key, "the store's CA");
  if (!signer.ok()) return signer.status();
  Stored out{*std::move(signer), std::nullopt, false};
  if (rotation->has_value()) {
    const std::string& text = **rotation;
    const size_t eol = text.find('\n');
    const std::string phase = text.substr(0, eol);
    auto next = eol == std::string::npos ? absl::StatusOr<CertAndKey>(absl::DataLossError("no CA"))
                                         : SplitStored(text.substr(eol + 1), "next CA");
    auto loaded = next.ok() ? LoadSigner(next->chain, next->key, "the store's next CA") : next.status();
    if (!loaded.ok() || (phase != "started" && phase != "activated")) {
      return absl::DataLossError(Cat("the store's CA rotation is damaged: ",
                                     loaded.ok() ? Cat("unknown phase \"", phase, "\"") : loaded.status().message()));
    }
    if (loaded->info.subject_key_id == out.current.info.subject_key_id) {
      // A finish that stopped (or, seen from another replica, is under way) after making
      // the new CA current.
      if (repair) {
        if (auto st = store.DeleteSecret(kRotationSecret); !st.ok()) return st;
      }
    } else {
      out.next = *std::move(loaded);
      out.next_signs = phase == "activated";
    }
  }
  return out;
}

absl::StatusOr<bool> CertificateAuthority::Reload() {
  if (from_files_) return false;
  // The stored texts first: parsing and verifying the chains is only worth it when they
  // changed (this runs every second on every replica).
  auto rotation = store_.GetSecret(kRotationSecret);
  if (!rotation.ok()) return rotation.status();
  auto ca = store_.GetSecret(kCaSecret);
  if (!ca.ok()) return ca.status();
  const std::string texts = Cat(rotation->value_or(""), "\n\n", ca->value_or(""));
  {
    std::lock_guard lock(mu_);
    if (texts == stored_texts_) return false;
  }
  auto state = LoadStored(store_, /*repair=*/false);
  if (!state.ok()) return state.status();
  std::lock_guard lock(mu_);
  stored_texts_ = texts;
  auto id = [](const std::optional<Signer>& s) { return s ? s->info.subject_key_id : std::string(); };
  if (state->current.info.subject_key_id == current_.info.subject_key_id && id(state->next) == id(next_) &&
      state->next_signs == next_signs_) {
    return false;
  }
  current_ = std::move(state->current);
  next_ = std::move(state->next);
  next_signs_ = state->next_signs;
  return true;
}

std::string CertificateAuthority::trust_bundle() const {
  const v1::TrustBundle t = trust();  // a named copy: iterating a temporary's field would dangle
  std::string out;
  for (const auto& root : t.roots_pem()) out += root;
  return out;
}

v1::TrustBundle CertificateAuthority::trust() const {
  v1::TrustBundle t;
  std::lock_guard lock(mu_);
  t.add_roots_pem(current_.root);
  t.add_issuer_key_ids(current_.info.subject_key_id);
  if (next_) {
    if (next_->root != current_.root) t.add_roots_pem(next_->root);
    t.add_issuer_key_ids(next_->info.subject_key_id);
  }
  t.set_signer_key_id(SigningLocked().info.subject_key_id);
  return t;
}

absl::Status CertificateAuthority::VerifyIssued(const x509::Certificate& leaf, const x509::CertInfo& info) const {
  std::optional<x509::Certificate> issuer;
  x509::Clock::time_point issuer_expiry{};
  {
    std::lock_guard lock(mu_);
    for (const Signer* s : {&current_, next_ ? &*next_ : nullptr}) {
      if (s && info.authority_key_id == s->info.subject_key_id) {
        issuer = s->parsed;
        issuer_expiry = s->info.not_after;
      }
    }
  }
  if (!issuer || !leaf.SignedBy(*issuer)) {
    return absl::UnauthenticatedError("the client certificate was not issued by this mesh's CA");
  }
  const auto now = x509::Clock::now();
  if (now >= issuer_expiry) return absl::UnauthenticatedError("the mesh CA that issued the client certificate has expired");
  if (now < info.not_before || now >= info.not_after) {
    return absl::UnauthenticatedError(Cat("the client certificate is not valid now (valid ", Rfc3339(info.not_before),
                                          " to ", Rfc3339(info.not_after), ")"));
  }
  return absl::OkStatus();
}

CertificateAuthority::Phase CertificateAuthority::phase() const {
  std::lock_guard lock(mu_);
  return !next_ ? Phase::kSteady : next_signs_ ? Phase::kActivated : Phase::kStarted;
}

std::string CertificateAuthority::RotationRecordLocked(bool next_signs) const {
  return Cat(next_signs ? "activated" : "started", "\n", ChainOf(*next_), next_->key);
}

absl::Status CertificateAuthority::StartRotation(const std::string& cert_pem, const std::string& key_pem) {
  if (from_files_) {
    return absl::FailedPreconditionError(
        "this control plane signs with the operator's CA from --ca_cert; rotation works on the store's CA (start "
        "without --ca_cert/--ca_key, and bring the operator's CA in with `meshctl ca rotate start --ca-cert --ca-key`)");
  }
  if (cert_pem.empty() != key_pem.empty()) {
    return absl::InvalidArgumentError("the new CA's certificate and key go together: give both or neither");
  }
  CertAndKey given{cert_pem, key_pem};
  if (cert_pem.empty()) {
    auto made = NewRoot();
    if (!made.ok()) return made.status();
    given = *std::move(made);
  }
  auto signer = LoadSigner(given.chain, given.key, "the new CA");
  if (!signer.ok()) return signer.status();
  std::lock_guard lock(mu_);
  if (next_) return absl::FailedPreconditionError("a CA rotation is already under way: activate or finish it first");
  if (signer->info.subject_key_id == current_.info.subject_key_id) {
    return absl::InvalidArgumentError("the new CA is the current one");
  }
  next_ = *std::move(signer);
  // Created once: of two starts through two control planes at the same moment, one
  // fails here rather than overwriting the other's new CA.
  auto created = store_.CreateSecret(kRotationSecret, RotationRecordLocked(false), 0);
  if (created.ok() && !*created) {
    // The record may be what a finish that stopped halfway left (its CA is the current
    // one): that is cleared, and the start made again.
    if (auto state = LoadStored(store_, /*repair=*/true); state.ok() && !state->next) {
      created = store_.CreateSecret(kRotationSecret, RotationRecordLocked(false), 0);
    }
  }
  if (!created.ok() || !*created) {
    next_.reset();
    if (!created.ok()) return created.status();
    return absl::FailedPreconditionError(
        "a CA rotation was started through another control plane a moment ago: see meshctl ca status");
  }
  return absl::OkStatus();
}

absl::Status CertificateAuthority::ActivateRotation() {
  std::lock_guard lock(mu_);
  if (!next_) return absl::FailedPreconditionError("no CA rotation is under way: start one first");
  if (next_signs_) return absl::OkStatus();
  if (auto st = store_.PutSecret(kRotationSecret, RotationRecordLocked(true)); !st.ok()) return st;
  next_signs_ = true;
  return absl::OkStatus();
}

absl::Status CertificateAuthority::FinishRotation() {
  std::lock_guard lock(mu_);
  if (!next_ || !next_signs_) {
    return absl::FailedPreconditionError(next_ ? "the new CA does not sign yet: activate the rotation first"
                                               : "no CA rotation is under way: start one first");
  }
  // The new CA becomes the stored one before the rotation record goes: a stop between the
  // two leaves a record Open recognises as finished.
  if (auto st = store_.PutSecret(kCaSecret, ChainOf(*next_) + next_->key); !st.ok()) return st;
  if (auto st = store_.DeleteSecret(kRotationSecret); !st.ok()) return st;
  current_ = *std::move(next_);
  next_.reset();
  next_signs_ = false;
  return absl::OkStatus();
}

std::vector<CertificateAuthority::Described> CertificateAuthority::Describe() const {
  std::lock_guard lock(mu_);
  std::vector<Described> out;
  auto add = [&](const Signer& s, const char* role) {
    out.push_back({s.info.subject_key_id, s.info.common_name, Rfc3339(s.info.not_after), role});
  };
  add(current_, "current");
  if (next_) add(*next_, "next");
  return out;
}

absl::StatusOr<std::string> CertificateAuthority::SignWorkload(const std::string& csr_pem, const std::string& trust_domain,
                                                               const std::string& ns, const std::string& name,
                                                               const std::string& service_account,
                                                               std::chrono::seconds lifetime) const {
  x509::Profile p;
  p.common_name = Cat(ns, "/", name);
  p.spiffe_id = x509::SpiffeId(trust_domain, ns, service_account);
  p.lifetime = lifetime;
  std::lock_guard lock(mu_);
  const Signer& signer = SigningLocked();
  auto leaf = x509::SignCsr(csr_pem, signer.cert, signer.key, p);
  if (!leaf.ok()) return leaf.status();
  return *leaf + signer.intermediates;
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
  // The current CA, also while a rotation is activated: an agent that has not seen the
  // new root yet must still reach a restarted control plane.
  std::lock_guard lock(mu_);
  const Signer& signer = current_;
  auto leaf = x509::SignCsr(csr_pem, signer.cert, signer.key, p);
  if (!leaf.ok()) return leaf.status();
  return *leaf + signer.intermediates;
}

}  // namespace meshplug::control_plane::security
