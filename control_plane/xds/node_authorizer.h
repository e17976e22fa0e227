// Whether an ADS stream may speak for the workload its Node names. The control plane's
// implementation (security::Access) requires the agent's workload certificate and that
// it is for exactly that workload; protocol tests over plaintext use their own.
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/status/status.h"
#include "meshplug/v1/resources.pb.h"

namespace meshplug::control_plane::xds {

// What `meshctl proxy status` shows of an agent's credentials.
struct AgentIdentity {
  std::string spiffe_id;
  std::string certificate_expiry;  // RFC 3339
  std::string certificate_issuer;  // the CA's key id
};

class NodeAuthorizer {
 public:
  virtual ~NodeAuthorizer() = default;
  // OK when the call's credentials are those of `workload`'s agent (an empty service
  // account is filled in from them); UNAUTHENTICATED or PERMISSION_DENIED saying why not.
  virtual absl::Status AuthorizeNode(const grpc::ServerContextBase& ctx, mesh::v1::Workload& workload,
                                     AgentIdentity* identity) const = 0;
};

}  // namespace meshplug::control_plane::xds
