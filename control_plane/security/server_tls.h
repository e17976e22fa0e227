// The control plane's gRPC server credentials: a serving certificate from the mesh CA
// for the names agents and meshctl reach it by, TLS only; client certificates are
// requested and, when presented, verified against the mesh's roots (agents use theirs
// after joining; meshctl and joining agents present a bearer token instead).
#pragma once

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "control_plane/security/certificate_authority.h"

namespace meshplug::control_plane::security {

// The names in the serving certificate: localhost, 127.0.0.1, ::1, this machine's host
// name, `listen_host` unless it is a wildcard, and `extra` (IP addresses or DNS names).
std::vector<std::string> ServingNames(const std::string& listen_host, const std::vector<std::string>& extra);

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const CertificateAuthority& ca,
                                                                               const std::vector<std::string>& names);

}  // namespace meshplug::control_plane::security
