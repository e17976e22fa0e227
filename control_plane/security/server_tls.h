// The control plane's gRPC server credentials: a serving certificate from the mesh CA
// for the names agents and meshctl reach it by, TLS only; client certificates are
// requested (agents use theirs after joining; meshctl and joining agents present a bearer
// token instead).
#pragma once

#include <grpcpp/security/server_credentials.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "control_plane/security/certificate_authority.h"

namespace meshplug::control_plane::security {

// No TLS 1.3 session tickets from any TLS server this process makes afterwards (gRPC's
// included; process-wide, so call it before any thread starts). None of the control
// plane's clients resumes a session (gRPC keeps no session cache unless asked, and a
// restarted control plane could not read the old tickets), and OpenSSL 3.0 re-parsed the
// session with the client's certificate for each of its two tickets per handshake: about
// 12% of the control plane's CPU to connect an agent. gRPC 1.51 gives no access to its
// SSL_CTX, but OpenSSL applies its configuration's "system_default" to every SSL_CTX it
// makes, so the setting goes there, unless the machine's OpenSSL configuration has TLS
// settings of its own (Debian 12's has none): those are kept. Logged when not applied.
enum class TicketSetting { kApplied, kMachineSettingsKept, kFailed };
TicketSetting IssueNoSessionTickets();

// The names in the serving certificate: localhost, 127.0.0.1, ::1, this machine's host
// name, `listen_host` unless it is a wildcard, and `extra` (IP addresses or DNS names).
std::vector<std::string> ServingNames(const std::string& listen_host, const std::vector<std::string>& extra);

// The serving certificate, from the mesh CA's current signer, kept in a private directory
// that gRPC's file watcher reads again every second: Follow() after a CA rotation finishes
// and new connections get the new CA's certificate without a restart, so agents can stop
// trusting the old root.
class ServingCertificate {
 public:
  // Makes a private directory under `dir`, and a first certificate for `names`.
  static absl::StatusOr<std::unique_ptr<ServingCertificate>> Create(const CertificateAuthority& ca,
                                                                    std::vector<std::string> names,
                                                                    const std::string& dir);
  ~ServingCertificate();  // removes the directory
  ServingCertificate(const ServingCertificate&) = delete;
  ServingCertificate& operator=(const ServingCertificate&) = delete;

  // TLS only; client certificates requested but verified by Access, not here, against the
  // CAs trusted at the time of the call.
  std::shared_ptr<grpc::ServerCredentials> credentials() const { return credentials_; }
  // A new key and certificate when the CA's current signer of serving certificates is not
  // the one that signed the last (a rotation finished); nothing otherwise. With `address`
  // (this server's), returns once new connections there get it (the watcher reads the
  // files every second), or fails after `timeout`.
  absl::Status Follow(const std::string& address = "", std::chrono::milliseconds timeout = std::chrono::seconds(5));

 private:
  ServingCertificate(const CertificateAuthority& ca, std::vector<std::string> names, std::string dir)
      : ca_(ca), names_(std::move(names)), dir_(std::move(dir)) {}

  const CertificateAuthority& ca_;
  const std::vector<std::string> names_;
  const std::string dir_;
  std::shared_ptr<grpc::ServerCredentials> credentials_;
  std::string issuer_key_id_;  // the CA that signed the certificate in the files
  int generation_ = 0;         // of the files: dir_/gen-N, `current` links to the latest
};

}  // namespace meshplug::control_plane::security
