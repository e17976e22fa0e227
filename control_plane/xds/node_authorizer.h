// Whether an ADS stream may speak for the workload its Node names. The control plane's
// implementation (security::Access) requires the agent's workload certificate and that
// it is for exactly that workload; protocol tests over plaintext use their own.
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/status/status.h"
#include "envoy/config/core/v3/base.pb.h"
#include "meshplug/v1/resources.pb.h"

namespace meshplug::control_plane::xds {

// What `meshctl proxy status` shows of an agent's credentials.
struct AgentIdentity {
  std::string spiffe_id;
  std::string certificate_expiry;  // RFC 3339
  std::string certificate_issuer;  // the CA's key id
  // An xDS token, not a certificate: the stream reads Envoy's types only.
  bool envoy_types_only = false;
};

class NodeAuthorizer {
 public:
  virtual ~NodeAuthorizer() = default;
  // OK when the call's credentials, or the token in `node`'s metadata, are those of
  // `workload` (the workload `node` names; an empty service account is filled in from
  // them); UNAUTHENTICATED or PERMISSION_DENIED saying why not.
  virtual absl::Status AuthorizeNode(const grpc::ServerContextBase& ctx, const envoy::config::core::v3::Node& node,
                                     mesh::v1::Workload& workload, AgentIdentity* identity) const = 0;
};

}  // namespace meshplug::control_plane::xds
