// Signs workload certificates. An agent authenticates with a join token the first time
// (accepted once) and with its current certificate to renew; either way it gets a
// certificate for that authenticated identity only, whatever its CSR claims. Trust
// domain and lifetime come from MeshConfig.spec.certificate.
#pragma once

#include <grpcpp/grpcpp.h>

#include "control_plane/security/access.h"
#include "control_plane/security/certificate_authority.h"
#include "control_plane/store/store.h"
#include "control_plane/xds/agent_registry.h"
#include "meshplug/v1/identity.grpc.pb.h"

namespace meshplug::control_plane::security {

class IdentityService final : public v1::Identity::CallbackService {
 public:
  // `registry` (optional) learns of every certificate issued, for proxy status and the
  // CA rotation's check that agents moved to the new CA.
  IdentityService(store::Store& store, const CertificateAuthority& ca, const Access& access, TokenIssuer& tokens,
                  xds::AgentRegistry* registry = nullptr)
      : store_(store), ca_(ca), access_(access), tokens_(tokens), registry_(registry) {}

  grpc::ServerUnaryReactor* Sign(grpc::CallbackServerContext* ctx, const v1::SignRequest* req,
                                 v1::SignResponse* resp) override;

  // The work of Sign, for callers that are not gRPC.
  grpc::Status SignFor(const Caller& caller, const v1::SignRequest& req, v1::SignResponse* resp);

 private:
  store::Store& store_;
  const CertificateAuthority& ca_;
  const Access& access_;
  TokenIssuer& tokens_;
  xds::AgentRegistry* const registry_;
};

}  // namespace meshplug::control_plane::security
