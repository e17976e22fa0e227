// For tests of the xDS protocol itself over plaintext channels: every stream may speak for
// the node it names. The control plane uses security::Access, which requires the
// workload's certificate.
#pragma once

#include "control_plane/xds/node_authorizer.h"

namespace meshplug::control_plane::testing {

class TrustingNodeAuthorizer final : public xds::NodeAuthorizer {
 public:
  absl::Status AuthorizeNode(const grpc::ServerContextBase&, const envoy::config::core::v3::Node&, mesh::v1::Workload&,
                             xds::AgentIdentity*) const override {
    return absl::OkStatus();
  }
};

}  // namespace meshplug::control_plane::testing
