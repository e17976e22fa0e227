// The agent's workload identity: a key it makes itself (it never leaves the agent), the
// certificate the control plane signs for it, and the mesh's roots.
//
// First start: a join token (from `meshctl workload token NS/NAME`) buys one certificate
// over TLS verified with the bootstrap's CA. Later: the certificate itself (mTLS) renews
// it at half its lifetime with a new key; existing connections keep their sessions and
// new ones use the new certificate. The identity is saved to `path` (mode 0600) so that
// a restart needs no new token while the certificate is valid.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "absl/status/statusor.h"
#include "agent/xds/control_plane_credentials.h"
#include "agent/xds/server_list.h"
#include "common/stats.h"
#include "meshplug/v1/snapshot.pb.h"

namespace meshplug::agent::xds {

struct IdentityMaterial {
  std::string key_pem;     // PKCS#8
  std::string chain_pem;   // the workload certificate, then intermediates
  std::string bundle_pem;  // the mesh's roots
  std::string spiffe_id;
  std::string workload;  // the certificate's "<namespace>/<name>"
  std::chrono::system_clock::time_point not_before, not_after;
  std::string issuer_key_id;  // the CA that issued it
  // The CAs a peer's certificate may come from (the snapshot's trust); empty: ours.
  std::vector<std::string> trusted_issuers;
};

class WorkloadIdentity {
 public:
  using Clock = std::chrono::system_clock;
  struct Options {
    std::string server_address;  // the control plane: host:port, or its replicas' host:port,host:port,...
    std::string ca_pem;          // roots that verify the control plane before the first certificate
    std::string join_token;
    std::string agent_id;        // "<namespace>/<name>"
    std::string path;            // where the identity is saved; empty: memory only
    std::chrono::milliseconds timeout{5000};  // one signing call
  };

  // Loads a saved identity of this agent that has not expired.
  WorkloadIdentity(Options options, Stats* stats);
  // The control-plane replica in use: the xDS client shares it, so certificates are
  // renewed by the replica that keeps the agent's status.
  std::shared_ptr<ServerList> servers() const { return servers_; }
  ~WorkloadIdentity();
  WorkloadIdentity(const WorkloadIdentity&) = delete;
  WorkloadIdentity& operator=(const WorkloadIdentity&) = delete;

  // mTLS to the control plane with the current certificate; joins first when there is no
  // valid one. The error says what is missing (a new join token, the control plane).
  absl::StatusOr<ControlPlaneCredentials> Credentials();

  // `fn` gets every certificate from now on, the current one (if any) at once: the data
  // plane's mTLS follows renewals through it. Set it before StartRenewal.
  void OnCertificate(std::function<void(const IdentityMaterial&)> fn);

  // Renews in the background at half of each certificate's lifetime (retrying sooner
  // after a failure) until destroyed.
  void StartRenewal();

  std::optional<IdentityMaterial> current() const;

  // The mesh's trust from a snapshot: peers are verified with its roots and issuers from
  // now on, and a certificate not issued by its signer (a CA rotation was activated) is
  // renewed at once.
  void Trust(const v1::TrustBundle& trust);

  // When a certificate installed at `installed` and valid until `not_after` is renewed:
  // half-way. (Its notBefore is a minute early for clock skew, so it is not the start.)
  static Clock::time_point RenewAt(Clock::time_point installed, Clock::time_point not_after);

 private:
  absl::Status Join();
  absl::Status Renew();
  // A new key and a certificate for it, asked for with `credentials`.
  absl::Status Obtain(const absl::StatusOr<ControlPlaneCredentials>& credentials, const char* why);
  void Install(IdentityMaterial material);
  void RenewLoop();

  const Options options_;
  const std::shared_ptr<ServerList> servers_;  // shared with the xDS client
  Stats* const stats_;
  mutable std::mutex mu_;
  std::mutex install_mu_;  // orders installs and the callback
  // Signing calls, one at a time (a join and a renewal may overlap), on a loop that lives
  // as long as this: a DNS lookup left running by a call is not waited for.
  std::mutex call_mu_;
  boost::asio::io_context io_;
  std::condition_variable cv_;
  std::optional<IdentityMaterial> current_;
  std::function<void(const IdentityMaterial&)> on_certificate_;
  struct TrustedRoots {
    std::string bundle_pem;
    std::vector<std::string> issuers;
  };
  std::optional<TrustedRoots> trust_;  // the latest snapshot's; applied to renewals too
  std::string renewal_asked_for_;      // the signer a renewal was last asked for
  int behind_signer_ = 0;              // renewals since then that another CA signed
  bool renew_now_ = false;
  Clock::time_point installed_at_{};
  uint64_t generation_ = 0;  // certificates installed
  bool token_spent_ = false;
  bool stopping_ = false;
  std::thread renewer_;
};

// The identity file: "<dir>/<namespace>.<name>.identity.pem" next to the saved snapshot.
absl::StatusOr<IdentityMaterial> ReadIdentityFile(const std::string& path);
absl::Status WriteIdentityFile(const std::string& path, const IdentityMaterial& m);

}  // namespace meshplug::agent::xds
