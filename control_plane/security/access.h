// Who a gRPC call comes from, and whether that may do what it asks. Every call of the
// admin API carries a bearer token (admin or read-only); agents present a join token
// once and their workload certificate (mTLS) after that.
#pragma once

#include <grpcpp/grpcpp.h>

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/x509.h"
#include "control_plane/security/certificate_authority.h"
#include "control_plane/security/tokens.h"
#include "control_plane/xds/node_authorizer.h"

namespace meshplug::control_plane::security {

struct Caller {
  std::optional<v1::TokenClaims> token;  // a verified bearer token
  // From a workload certificate the TLS handshake verified against the mesh's roots.
  std::string workload;   // "<namespace>/<name>"
  std::string spiffe_id;
  x509::Clock::time_point certificate_expiry{};
  std::string certificate_issuer;  // the CA's key id

  bool Is(Role role) const { return token && token->role() == RoleName(role); }
  std::string Describe() const;
};

enum class Need {
  kRead,   // get, watch, version, proxy status
  kWrite,  // apply, delete, config dumps (they hold PluginConfig secrets), tokens
};

class Access final : public xds::NodeAuthorizer {
 public:
  // A workload certificate must be issued by `ca` itself (the current or, during a
  // rotation, the next CA), not merely chain to the same root: an operator's root may
  // sign for others. The TLS layer only asks for it; `ca` verifies it.
  // `store` holds the labels join tokens bound to workloads.
  Access(const TokenIssuer& tokens, const CertificateAuthority& ca, store::Store& store)
      : tokens_(tokens), ca_(ca), store_(store) {}

  // An ADS stream: the caller's workload certificate must be for exactly this workload,
  // and the labels it registers those its join token bound, if any; or (no certificate)
  // node.metadata.token an xDS token for it, whose stream reads Envoy's types only.
  absl::Status AuthorizeNode(const grpc::ServerContextBase& ctx, const envoy::config::core::v3::Node& node,
                             mesh::v1::Workload& workload, xds::AgentIdentity* identity) const override;

  // The caller's verified credentials; UNAUTHENTICATED when one is presented but not
  // valid (forged, expired, damaged).
  absl::StatusOr<Caller> Authenticate(const grpc::ServerContextBase& ctx) const;

  // For the admin API: the token's role must allow `need`. The status names what is
  // missing and how to get it.
  // `caller` (optional) receives who it is, for choosing what to show.
  grpc::Status Authorize(const grpc::ServerContextBase& ctx, Need need, std::string_view what,
                         Caller* caller = nullptr) const;
  // The same rule for a bearer token that came another way (the HTTP pages); `token` may be
  // empty (none given). UNAUTHENTICATED or PERMISSION_DENIED name what is missing.
  absl::Status AuthorizeBearer(std::string_view token, Need need, std::string_view what,
                               std::string_view peer) const;

 private:
  // Whether `caller` may do what `need`s, logging each refusal.
  absl::Status Decide(absl::StatusOr<Caller> caller, Need need, std::string_view what, std::string_view peer,
                      Caller* out) const;
  absl::Status AuthorizeXdsToken(const envoy::config::core::v3::Node& node, const std::string& agent,
                                 xds::AgentIdentity* identity) const;

  const TokenIssuer& tokens_;
  const CertificateAuthority& ca_;
  store::Store& store_;
};

// grpc::Status from absl::Status.
grpc::Status ToGrpc(const absl::Status& st);

}  // namespace meshplug::control_plane::security
