// The mesh's certificate authority: a root made on first start and kept in the store, or
// the operator's own CA (an intermediate under a corporate root, like Istio's plug-in CA).
// It signs workload certificates for the identity the caller authenticated as, and the
// control plane's own serving certificate.
//
// The store's CA rotates in three steps, each safe under traffic: start (a new CA is
// trusted beside the current one; agents get both roots in their snapshots), activate
// (the new CA signs; agents renew at once) and finish (the old CA is dropped). The state
// is kept in the store, so a restart resumes where the rotation was.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/x509.h"
#include "control_plane/store/store.h"
#include "meshplug/v1/snapshot.pb.h"

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

  // The roots that verify what this CA signs (PEM); both CAs' during a rotation.
  std::string trust_bundle() const;
  // What agents need to verify each other: roots, trusted issuers and the signer.
  v1::TrustBundle trust() const;

  // The certificate `leaf` (one a peer presented; `info` is its Info()) was issued by a CA
  // trusted now, carries its valid signature and is within its validity period.
  absl::Status VerifyIssued(const x509::Certificate& leaf, const x509::CertInfo& info) const;

  // A workload certificate chain (leaf, then intermediates) for the key in `csr_pem`.
  absl::StatusOr<std::string> SignWorkload(const std::string& csr_pem, const std::string& trust_domain,
                                           const std::string& ns, const std::string& name,
                                           const std::string& service_account, std::chrono::seconds lifetime) const;
  // A serving certificate chain for the key in `csr_pem`, by the current CA (also while a
  // rotation is activated: agents that have not seen the new root must still reach it).
  absl::StatusOr<std::string> SignServer(const std::string& csr_pem, const std::vector<std::string>& dns_names,
                                         const std::vector<std::string>& ip_addresses,
                                         std::chrono::seconds lifetime) const;

  // Reads the CA and its rotation from the store again: another control-plane replica
  // may have rotated it. True when something changed (the trust must be published).
  absl::StatusOr<bool> Reload();

  enum class Phase { kSteady, kStarted, kActivated };
  Phase phase() const;
  // Rotation steps; each refuses, saying why, when it does not follow the previous one.
  // Start: the operator's new CA (`cert_pem` with its chain, `key_pem`) or, both empty, a
  // new root.
  absl::Status StartRotation(const std::string& cert_pem, const std::string& key_pem);
  absl::Status ActivateRotation();
  absl::Status FinishRotation();
  // The CAs trusted now, the current one first.
  struct Described {
    std::string key_id, subject, expires, role;
  };
  std::vector<Described> Describe() const;

  // A CA certificate with its key, checked: what Open and StartRotation accept.
  struct Signer {
    std::string cert, key;
    std::string intermediates;  // sent after each leaf: the CA certificate and any above it below the root
    std::string root;
    x509::CertInfo info;
    x509::Certificate parsed;  // `cert`, to verify what it signed without parsing it each time
  };

 private:
  CertificateAuthority(store::Store& store, bool from_files, Signer current)
      : store_(store), from_files_(from_files), current_(std::move(current)) {}
  const Signer& SigningLocked() const { return next_ && next_signs_ ? *next_ : current_; }
  // The store's CA and rotation as Open and Reload read them; `repair`: finish a finish
  // that stopped halfway (Open only: another replica's may be under way).
  struct Stored {
    Signer current;
    std::optional<Signer> next;
    bool next_signs;
  };
  static absl::StatusOr<Stored> LoadStored(store::Store& store, bool repair);
  std::string RotationRecordLocked(bool next_signs) const;  // the rotation secret's text

  store::Store& store_;
  const bool from_files_;
  mutable std::mutex mu_;
  Signer current_;
  std::optional<Signer> next_;  // during a rotation
  bool next_signs_ = false;     // activated
  std::string stored_texts_;    // the store's rotation and CA texts Reload last parsed
};

}  // namespace meshplug::control_plane::security
